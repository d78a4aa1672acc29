/* Tokenizer: ids must equal those of the HF `tokenizers` library exactly (reference files made by
 * tools/make_tokenizer_refs.py for byte-level GPT-2 / Llama-3 / Qwen2 patterns and SentencePiece-style
 * BPE), decode must match its decode, byte-level round trips are exact, bad files give named errors. */
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "core/json.h"
#include "exec/tokenizer.h"

static const char *NAMES[] = {"gpt2", "gpt2_prefix", "llama3", "qwen2", "spm", "spm_metaspace"};

static wk_tokenizer *load(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tok_%s.json", WIKV_SOURCE_DIR, name);
    wk_tokenizer *t = NULL;
    wk_err err = {0};
    ck_assert_msg(wk_tokenizer_load(path, &t, &err) == 0, "%s", err.msg);
    return t;
}

static void check_ids(const char *name, const char *text, const wk_json *want, const int32_t *got, size_t n) {
    int same = want->count == n;
    for (size_t i = 0; same && i < n; i++) same = (int)want->items[i].number == got[i];
    if (!same) {
        fprintf(stderr, "%s: %s\n  want:", name, text);
        for (size_t i = 0; i < want->count; i++) fprintf(stderr, " %d", (int)want->items[i].number);
        fprintf(stderr, "\n  got: ");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n");
    }
    ck_assert_msg(same, "%s: ids differ for \"%s\"", name, text);
}

START_TEST(reference_ids_exact) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tokenizer_refs.json", WIKV_SOURCE_DIR);
    wk_json refs;
    wk_err err = {0};
    ck_assert_msg(wk_json_parse_file(path, &refs, &err) == 0, "%s", err.msg);
    const char *name = NAMES[_i];
    wk_tokenizer *t = load(name);
    const wk_json *rows = wk_json_get(&refs, name);
    ck_assert_ptr_nonnull(rows);
    ck_assert_int_gt(rows->count, 10);
    for (size_t r = 0; r < rows->count; r++) {
        const wk_json *row = &rows->items[r];
        const wk_json *text = wk_json_get(row, "text");
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(wk_tokenizer_encode(t, text->string, text->string_len, 0, &ids, &n, &err), 0);
        check_ids(name, text->string, wk_json_get(row, "ids"), ids, n);
        char *dec;
        size_t dlen;
        ck_assert_int_eq(wk_tokenizer_decode(t, ids, n, 0, &dec, &dlen, &err), 0);
        const wk_json *want = wk_json_get(row, "decoded");
        ck_assert_msg(dlen == want->string_len && memcmp(dec, want->string, dlen) == 0, "%s: decode \"%s\" != \"%s\"", name,
                      dec, want->string);
        free(dec);
        free(ids);
        ck_assert_int_eq(wk_tokenizer_encode(t, text->string, text->string_len, WK_TOK_ADD_SPECIAL, &ids, &n, &err), 0);
        check_ids(name, text->string, wk_json_get(row, "ids_special"), ids, n);
        free(ids);
    }
    wk_tokenizer_free(t);
    wk_json_free(&refs);
}
END_TEST

START_TEST(bytelevel_round_trip) {
    wk_tokenizer *t = load(_i == 0 ? "gpt2" : _i == 1 ? "llama3" : "qwen2");
    const char *texts[] = {"plain", "  spaces\t\ttabs\n\nnew lines  ", "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
                           "bad utf8 \xff\xfe\xc3 end", "x<s>y</s>", "1234567890 000"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t *ids;
        size_t n, len;
        char *dec;
        wk_err err = {0};
        ck_assert_int_eq(wk_tokenizer_encode(t, texts[k], strlen(texts[k]), 0, &ids, &n, &err), 0);
        ck_assert_int_eq(wk_tokenizer_decode(t, ids, n, 0, &dec, &len, &err), 0);
        ck_assert_str_eq(dec, texts[k]);
        free(dec);
        free(ids);
    }
    wk_tokenizer_free(t);
}
END_TEST

START_TEST(special_tokens_and_lookup) {
    wk_tokenizer *t = load("spm");
    int s = wk_tokenizer_find(t, "<s>");
    ck_assert_int_eq(s, 1);
    ck_assert_int_eq(wk_tokenizer_bos(t), 1);
    ck_assert(wk_tokenizer_is_special(t, s));
    ck_assert_str_eq(wk_tokenizer_piece(t, s), "<s>");
    int32_t *ids;
    size_t n;
    char *dec;
    size_t len;
    wk_err err = {0};
    ck_assert_int_eq(wk_tokenizer_encode(t, "The passkey</s>", 15, WK_TOK_ADD_SPECIAL, &ids, &n, &err), 0);
    ck_assert_int_eq(ids[0], s);
    ck_assert_int_eq(ids[n - 1], wk_tokenizer_find(t, "</s>"));
    ck_assert_int_eq(wk_tokenizer_decode(t, ids, n, WK_TOK_SKIP_SPECIAL, &dec, &len, &err), 0);
    ck_assert_str_eq(dec, "The passkey");
    free(dec);
    ck_assert_int_eq(wk_tokenizer_decode(t, ids, n, 0, &dec, &len, &err), 0);
    ck_assert_str_eq(dec, "<s> The passkey</s>");
    free(dec);
    free(ids);
    int32_t bad = wk_tokenizer_vocab_size(t);
    ck_assert_int_eq(wk_tokenizer_decode(t, &bad, 1, 0, &dec, &len, &err), WK_EINVAL);
    ck_assert_msg(strstr(err.msg, "not in vocabulary") != NULL, "%s", err.msg);
    ck_assert_int_eq(wk_tokenizer_pretok(t), WK_PRETOK_NONE);
    wk_tokenizer_free(t);
    t = load("llama3");
    ck_assert_int_eq(wk_tokenizer_pretok(t), WK_PRETOK_LLAMA3);
    wk_tokenizer_free(t);
}
END_TEST

typedef struct {
    char out[512];
    size_t o;
    const char *text;
} split_ctx;

static int collect(void *ctx, size_t start, size_t len) {
    split_ctx *c = ctx;
    c->o += (size_t)snprintf(c->out + c->o, sizeof c->out - c->o, "[%.*s]", (int)len, c->text + start);
    return 0;
}

static const char *split(wk_pretok_kind k, const char *text, split_ctx *c) {
    c->o = 0;
    c->out[0] = '\0';
    c->text = text;
    wk_tokenizer_pretok_split(k, text, strlen(text), collect, c);
    return c->out;
}

/* The hand-written matcher against what the regexes give (known answers of the patterns). */
START_TEST(pretokenizer_patterns) {
    split_ctx c;
    ck_assert_str_eq(split(WK_PRETOK_GPT2, "Hello world's 12345 ok!!  x\n", &c), "[Hello][ world]['s][ 12345][ ok][!!][ ][ x][\n]");
    ck_assert_str_eq(split(WK_PRETOK_LLAMA3, "Hello world'S 12345 ok!!\n\n x", &c), "[Hello][ world]['S][ ][123][45][ ok][!!\n\n][ x]");
    ck_assert_str_eq(split(WK_PRETOK_QWEN2, "a 123", &c), "[a][ ][1][2][3]");
    ck_assert_str_eq(split(WK_PRETOK_LLAMA3, "x  \n  y", &c), "[x][  \n][ ][ y]");
    ck_assert_str_eq(split(WK_PRETOK_GPT2, "(hi)", &c), "[(][hi][)]");
    ck_assert_str_eq(split(WK_PRETOK_LLAMA3, "(hi)", &c), "[(hi][)]");
}
END_TEST

START_TEST(bad_files_named_errors) {
    struct {
        const char *json, *want;
    } cases[] = {
        {"[1,2]", "not a JSON object"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}", "model.type 'Unigram' is not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", "model.vocab[\"a\"]: bad id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}", "model.merges[0]: piece not in vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", "token id 0 assigned twice"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", "lacks the piece of byte"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}}", "regex '\\w+' is not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"NFKC\"}}", "normalizer type 'NFKC'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_tokenizer *t = NULL;
        wk_err err = {0};
        int rc = wk_tokenizer_parse(cases[i].json, strlen(cases[i].json), "tokenizer.json", &t, &err);
        ck_assert_msg(rc < 0 && t == NULL, "case %zu accepted", i);
        ck_assert_msg(strstr(err.msg, cases[i].want) != NULL, "case %zu: %s", i, err.msg);
    }
    /* No unk and no byte fallback: an unknown character is an error, not a crash. */
    const char *tiny = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}";
    wk_tokenizer *t = NULL;
    wk_err err = {0};
    ck_assert_int_eq(wk_tokenizer_parse(tiny, strlen(tiny), "t", &t, &err), 0);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(wk_tokenizer_encode(t, "ab", 2, 0, &ids, &n, &err), WK_EFORMAT);
    ck_assert_int_eq(wk_tokenizer_encode(t, "aa", 2, 0, &ids, &n, &err), 0);
    ck_assert_int_eq(n, 2); /* no normalizer, no merges: one id per character */
    free(ids);
    wk_tokenizer_free(t);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, reference_ids_exact, 0, (int)(sizeof NAMES / sizeof NAMES[0]));
    tcase_add_loop_test(tc, bytelevel_round_trip, 0, 3);
    tcase_add_test(tc, special_tokens_and_lookup);
    tcase_add_test(tc, pretokenizer_patterns);
    tcase_add_test(tc, bad_files_named_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
