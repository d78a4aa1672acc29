/* tokenizer.json -> BPE tokenizer (byte-level or SentencePiece-style), encode and decode. Vocab pieces
 * live in one hash table (piece -> id), merges in another ((left id, right id) -> rank, merged id).
 * BPE applies the lowest-ranked adjacent pair first (leftmost on ties), as HF tokenizers does. */
#include "exec/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

#define TOK_MAX_VOCAB (1 << 22)
#define TOK_MAX_TEMPLATE 4

typedef struct {
    char *content;
    size_t len;
    int id;
    int special;
} added_token;

typedef struct {
    uint64_t key; /* (left << 32) | right, or UINT64_MAX when empty */
    int rank, merged;
} merge_slot;

typedef enum { KIND_BYTELEVEL, KIND_SPM } tok_kind;

struct wk_tokenizer {
    tok_kind kind;
    wk_pretok_kind pretok;
    int add_prefix_space;   /* ByteLevel: prepend ' ' when the text does not start with one */
    int spm_prepend;        /* SPM: 0 never, 1 first segment only, 2 every segment */
    int spm_prepend_if_bare;/* Metaspace: prepend only when the segment does not start with a space */
    int byte_fallback, fuse_unk, ignore_merges, unk_id;
    int spm_strip_lead;     /* SPM decode: strip one leading space */
    int n_vocab;            /* max id + 1 */
    char **pieces;          /* [n_vocab] id -> piece (NULL for holes) */
    size_t *piece_len;      /* [n_vocab] */
    uint8_t *is_special;    /* [n_vocab] */
    int *map;               /* hash: piece -> id, open addressing, -1 = empty */
    size_t map_cap;
    merge_slot *merges;
    size_t merges_cap;
    added_token *added;     /* sorted by length descending (longest match first) */
    size_t n_added;
    uint8_t added_first[256];/* 1 when some added token starts with this byte (fast skip) */
    int byte_ids[256];      /* SPM byte fallback: id of <0xXX>, or -1 */
    uint32_t byte_to_cp[256];/* byte-level: GPT-2 bytes_to_unicode */
    int cp_to_byte[324];    /* inverse, for code points < 324 (all mapped ones are), -1 otherwise */
    int prefix_ids[TOK_MAX_TEMPLATE], n_prefix;
    int suffix_ids[TOK_MAX_TEMPLATE], n_suffix;
};

/* ---- hashing --------------------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int map_find(const wk_tokenizer *t, const char *s, size_t n) {
    if (!t->map_cap) return -1;
    for (size_t i = fnv1a(s, n) & (t->map_cap - 1);; i = (i + 1) & (t->map_cap - 1)) {
        int id = t->map[i];
        if (id < 0) return -1;
        if (t->piece_len[id] == n && memcmp(t->pieces[id], s, n) == 0) return id;
    }
}

static void map_insert(wk_tokenizer *t, int id) {
    size_t i = fnv1a(t->pieces[id], t->piece_len[id]) & (t->map_cap - 1);
    while (t->map[i] >= 0) {
        int o = t->map[i];
        if (t->piece_len[o] == t->piece_len[id] && memcmp(t->pieces[o], t->pieces[id], t->piece_len[id]) == 0) return;
        i = (i + 1) & (t->map_cap - 1);
    }
    t->map[i] = id;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static const merge_slot *merge_find(const wk_tokenizer *t, int a, int b) {
    if (!t->merges_cap) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = mix64(key) & (t->merges_cap - 1);; i = (i + 1) & (t->merges_cap - 1)) {
        if (t->merges[i].key == UINT64_MAX) return NULL;
        if (t->merges[i].key == key) return &t->merges[i];
    }
}

static void merge_insert(wk_tokenizer *t, int a, int b, int rank, int merged) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = mix64(key) & (t->merges_cap - 1);
    while (t->merges[i].key != UINT64_MAX) {
        if (t->merges[i].key == key) return; /* first (lowest rank) wins */
        i = (i + 1) & (t->merges_cap - 1);
    }
    t->merges[i] = (merge_slot){key, rank, merged};
}

static size_t pow2_above(size_t n) {
    size_t c = 16;
    while (c < n * 2) c <<= 1;
    return c;
}

/* ---- loading --------------------------------------------------------------------------------- */

static void bytes_to_unicode(wk_tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 324; i++) t->cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->byte_to_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        t->cp_to_byte[t->byte_to_cp[b]] = b;
    }
}

static int set_piece(wk_tokenizer *t, int id, const char *s, size_t n, const char *what, wk_err *err) {
    if (id < 0 || id >= t->n_vocab) return wk_err_set(err, WK_EFORMAT, "%s: token id %d out of range", what, id);
    if (t->pieces[id]) {
        if (t->piece_len[id] == n && memcmp(t->pieces[id], s, n) == 0) return 0;
        return wk_err_set(err, WK_EFORMAT, "%s: token id %d assigned twice", what, id);
    }
    t->pieces[id] = malloc(n + 1);
    if (!t->pieces[id]) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    memcpy(t->pieces[id], s, n);
    t->pieces[id][n] = '\0';
    t->piece_len[id] = n;
    return 0;
}

/* Largest id in model.vocab and added_tokens, validated. */
static int max_id(const wk_json *vocab, const wk_json *added, const char *what, int *out, wk_err *err) {
    double mx = -1;
    for (size_t i = 0; i < vocab->count; i++) {
        const wk_json *v = &vocab->items[i];
        if (v->type != WK_JSON_NUMBER || v->number < 0 || v->number >= TOK_MAX_VOCAB || v->number != (double)(int)v->number)
            return wk_err_set(err, WK_EFORMAT, "%s: model.vocab[\"%.40s\"]: bad id", what, vocab->keys[i]);
        if (v->number > mx) mx = v->number;
    }
    for (size_t i = 0; added && i < added->count; i++) {
        const wk_json *id = wk_json_get(&added->items[i], "id");
        const wk_json *c = wk_json_get(&added->items[i], "content");
        if (!id || id->type != WK_JSON_NUMBER || id->number < 0 || id->number >= TOK_MAX_VOCAB ||
            id->number != (double)(int)id->number || !c || c->type != WK_JSON_STRING || c->string_len == 0)
            return wk_err_set(err, WK_EFORMAT, "%s: added_tokens[%zu]: bad id or content", what, i);
        if (id->number > mx) mx = id->number;
    }
    if (mx < 0) return wk_err_set(err, WK_EFORMAT, "%s: model.vocab is empty", what);
    *out = (int)mx + 1;
    return 0;
}

static int cmp_added(const void *a, const void *b) {
    const added_token *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->id - y->id;
}

static int load_vocab(wk_tokenizer *t, const wk_json *model, const wk_json *added, const char *what, wk_err *err) {
    const wk_json *vocab = wk_json_get(model, "vocab");
    if (!vocab || vocab->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s: field model.vocab missing", what);
    if (max_id(vocab, added, what, &t->n_vocab, err)) return err->code;
    t->pieces = calloc((size_t)t->n_vocab, sizeof *t->pieces);
    t->piece_len = calloc((size_t)t->n_vocab, sizeof *t->piece_len);
    t->is_special = calloc((size_t)t->n_vocab, 1);
    t->map_cap = pow2_above(vocab->count + (added ? added->count : 0));
    t->map = malloc(t->map_cap * sizeof *t->map);
    if (!t->pieces || !t->piece_len || !t->is_special || !t->map) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    memset(t->map, 0xFF, t->map_cap * sizeof *t->map);
    for (size_t i = 0; i < vocab->count; i++) {
        int id = (int)vocab->items[i].number;
        if (set_piece(t, id, vocab->keys[i], strlen(vocab->keys[i]), what, err)) return err->code;
        map_insert(t, id);
    }
    if (!added) return 0;
    if (added->type != WK_JSON_ARRAY) return wk_err_set(err, WK_EFORMAT, "%s: field added_tokens is not an array", what);
    t->added = calloc(added->count + 1, sizeof *t->added);
    if (!t->added) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < added->count; i++) {
        const wk_json *c = wk_json_get(&added->items[i], "content");
        const wk_json *sp = wk_json_get(&added->items[i], "special");
        int id = (int)wk_json_get(&added->items[i], "id")->number;
        if (set_piece(t, id, c->string, c->string_len, what, err)) return err->code;
        map_insert(t, id);
        t->is_special[id] = sp && sp->type == WK_JSON_BOOL && sp->number != 0;
        t->added[t->n_added++] = (added_token){t->pieces[id], t->piece_len[id], id, t->is_special[id]};
    }
    qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    for (size_t i = 0; i < t->n_added; i++) t->added_first[(unsigned char)t->added[i].content[0]] = 1;
    return 0;
}

/* One merge entry: "a b" (split at the single space) or ["a", "b"]. */
static int merge_parts(const wk_json *m, const char **a, size_t *na, const char **b, size_t *nb) {
    if (m->type == WK_JSON_ARRAY && m->count == 2 && m->items[0].type == WK_JSON_STRING && m->items[1].type == WK_JSON_STRING) {
        *a = m->items[0].string;
        *na = m->items[0].string_len;
        *b = m->items[1].string;
        *nb = m->items[1].string_len;
        return 0;
    }
    if (m->type != WK_JSON_STRING) return -1;
    const char *sp = memchr(m->string, ' ', m->string_len);
    if (!sp || sp == m->string || (size_t)(sp - m->string) + 1 >= m->string_len) return -1;
    *a = m->string;
    *na = (size_t)(sp - m->string);
    *b = sp + 1;
    *nb = m->string_len - *na - 1;
    return memchr(*b, ' ', *nb) ? -1 : 0;
}

static int load_merges(wk_tokenizer *t, const wk_json *model, const char *what, wk_err *err) {
    const wk_json *merges = wk_json_get(model, "merges");
    if (!merges || merges->type == WK_JSON_NULL) return 0;
    if (merges->type != WK_JSON_ARRAY) return wk_err_set(err, WK_EFORMAT, "%s: field model.merges is not an array", what);
    t->merges_cap = pow2_above(merges->count + 1);
    t->merges = malloc(t->merges_cap * sizeof *t->merges);
    if (!t->merges) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < t->merges_cap; i++) t->merges[i].key = UINT64_MAX;
    char *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < merges->count; i++) {
        const char *a, *b;
        size_t na, nb;
        if (merge_parts(&merges->items[i], &a, &na, &b, &nb)) {
            free(buf);
            return wk_err_set(err, WK_EFORMAT, "%s: model.merges[%zu]: not a pair", what, i);
        }
        int ia = map_find(t, a, na), ib = map_find(t, b, nb);
        if (na + nb + 1 > cap) {
            cap = (na + nb + 1) * 2;
            char *nbuf = realloc(buf, cap);
            if (!nbuf) {
                free(buf);
                return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
            }
            buf = nbuf;
        }
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
        int im = map_find(t, buf, na + nb);
        if (ia < 0 || ib < 0 || im < 0) { /* HF refuses such files; so do we, naming the merge */
            free(buf);
            return wk_err_set(err, WK_EFORMAT, "%s: model.merges[%zu]: piece not in vocab", what, i);
        }
        merge_insert(t, ia, ib, (int)i, im);
    }
    free(buf);
    return 0;
}

static int json_bool(const wk_json *o, const char *key, int fallback) {
    const wk_json *v = wk_json_get(o, key);
    return v && v->type == WK_JSON_BOOL ? v->number != 0 : fallback;
}

static const char *GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* One pre-tokenizer step (ByteLevel, Split, Metaspace, Digits-free sequences). */
static int pretok_step(wk_tokenizer *t, const wk_json *p, const char *what, wk_err *err) {
    const char *type = wk_json_get_string(p, "type");
    if (!type) return wk_err_set(err, WK_EFORMAT, "%s: pre_tokenizer: field type missing", what);
    if (strcmp(type, "ByteLevel") == 0) {
        t->kind = KIND_BYTELEVEL;
        t->add_prefix_space = json_bool(p, "add_prefix_space", 0);
        if (json_bool(p, "use_regex", 1)) {
            if (t->pretok != WK_PRETOK_NONE) return wk_err_set(err, WK_EUNSUPPORTED, "%s: pre_tokenizer: two regex splits", what);
            t->pretok = WK_PRETOK_GPT2;
        }
        return 0;
    }
    if (strcmp(type, "Split") == 0) {
        const wk_json *pat = wk_json_get(p, "pattern");
        const char *re = pat ? wk_json_get_string(pat, "Regex") : NULL;
        const char *beh = wk_json_get_string(p, "behavior");
        if (!re || json_bool(p, "invert", 0) || !beh || strcmp(beh, "Isolated") != 0)
            return wk_err_set(err, WK_EUNSUPPORTED, "%s: pre_tokenizer Split: only Isolated regex splits are supported", what);
        if (strcmp(re, GPT2_PATTERN) == 0) t->pretok = WK_PRETOK_GPT2;
        else if (strcmp(re, LLAMA3_PATTERN) == 0) t->pretok = WK_PRETOK_LLAMA3;
        else if (strcmp(re, QWEN2_PATTERN) == 0) t->pretok = WK_PRETOK_QWEN2;
        else return wk_err_set(err, WK_EUNSUPPORTED, "%s: pre_tokenizer Split: regex '%.120s' is not supported", what, re);
        return 0;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep = wk_json_get_string(p, "replacement");
        if (rep && strcmp(rep, "\xe2\x96\x81") != 0)
            return wk_err_set(err, WK_EUNSUPPORTED, "%s: pre_tokenizer Metaspace: replacement must be U+2581", what);
        if (json_bool(p, "split", 0))
            return wk_err_set(err, WK_EUNSUPPORTED, "%s: pre_tokenizer Metaspace: split=true is not supported", what);
        const char *scheme = wk_json_get_string(p, "prepend_scheme");
        int add = json_bool(p, "add_prefix_space", 1);
        t->kind = KIND_SPM;
        t->spm_prepend_if_bare = 1;
        t->spm_prepend = scheme ? (strcmp(scheme, "never") == 0 ? 0 : strcmp(scheme, "first") == 0 ? 1 : 2) : (add ? 2 : 0);
        return 0;
    }
    return wk_err_set(err, WK_EUNSUPPORTED, "%s: pre_tokenizer type '%.40s' is not supported", what, type);
}

static int load_pretok(wk_tokenizer *t, const wk_json *p, const char *what, wk_err *err) {
    if (!p || p->type == WK_JSON_NULL) return 0;
    const char *type = wk_json_get_string(p, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const wk_json *list = wk_json_get(p, "pretokenizers");
        if (!list || list->type != WK_JSON_ARRAY)
            return wk_err_set(err, WK_EFORMAT, "%s: pre_tokenizer Sequence: field pretokenizers missing", what);
        for (size_t i = 0; i < list->count; i++)
            if (pretok_step(t, &list->items[i], what, err)) return err->code;
        return 0;
    }
    return pretok_step(t, p, what, err);
}

/* Normalizers: none, NFC (identity here), or the Llama-2 pair Prepend("▁") + Replace(" ", "▁"). */
static int norm_step(wk_tokenizer *t, const wk_json *n, const char *what, wk_err *err) {
    const char *type = wk_json_get_string(n, "type");
    if (!type) return wk_err_set(err, WK_EFORMAT, "%s: normalizer: field type missing", what);
    if (strcmp(type, "NFC") == 0) return 0;
    if (strcmp(type, "Prepend") == 0) {
        const char *p = wk_json_get_string(n, "prepend");
        if (!p || strcmp(p, "\xe2\x96\x81") != 0)
            return wk_err_set(err, WK_EUNSUPPORTED, "%s: normalizer Prepend: only U+2581 is supported", what);
        t->kind = KIND_SPM;
        t->spm_prepend = 2;
        return 0;
    }
    if (strcmp(type, "Replace") == 0) {
        const wk_json *pat = wk_json_get(n, "pattern");
        const char *s = pat ? wk_json_get_string(pat, "String") : NULL, *c = wk_json_get_string(n, "content");
        if (!s || !c || strcmp(s, " ") != 0 || strcmp(c, "\xe2\x96\x81") != 0)
            return wk_err_set(err, WK_EUNSUPPORTED, "%s: normalizer Replace: only ' ' -> U+2581 is supported", what);
        t->kind = KIND_SPM;
        return 0;
    }
    return wk_err_set(err, WK_EUNSUPPORTED, "%s: normalizer type '%.40s' is not supported", what, type);
}

static int load_normalizer(wk_tokenizer *t, const wk_json *n, const char *what, wk_err *err) {
    if (!n || n->type == WK_JSON_NULL) return 0;
    const char *type = wk_json_get_string(n, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const wk_json *list = wk_json_get(n, "normalizers");
        if (!list || list->type != WK_JSON_ARRAY)
            return wk_err_set(err, WK_EFORMAT, "%s: normalizer Sequence: field normalizers missing", what);
        for (size_t i = 0; i < list->count; i++)
            if (norm_step(t, &list->items[i], what, err)) return err->code;
        return 0;
    }
    return norm_step(t, n, what, err);
}

/* TemplateProcessing "single": special tokens before and after the sequence $A. */
static int load_template(wk_tokenizer *t, const wk_json *pp, const char *what, wk_err *err) {
    if (!pp || pp->type == WK_JSON_NULL) return 0;
    const char *type = wk_json_get_string(pp, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const wk_json *list = wk_json_get(pp, "processors");
        for (size_t i = 0; list && list->type == WK_JSON_ARRAY && i < list->count; i++)
            if (load_template(t, &list->items[i], what, err)) return err->code;
        return 0;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0) return 0; /* ByteLevel etc.: adds nothing */
    const wk_json *single = wk_json_get(pp, "single");
    if (!single || single->type != WK_JSON_ARRAY) return 0;
    int seen_seq = 0;
    for (size_t i = 0; i < single->count; i++) {
        const wk_json *st = wk_json_get(&single->items[i], "SpecialToken");
        if (!st) {
            seen_seq = 1;
            continue;
        }
        const char *name = wk_json_get_string(st, "id");
        int id = name ? map_find(t, name, strlen(name)) : -1;
        if (id < 0) return wk_err_set(err, WK_EFORMAT, "%s: post_processor: special token '%.40s' not in vocab", what, name ? name : "?");
        if (!seen_seq && t->n_prefix < TOK_MAX_TEMPLATE) t->prefix_ids[t->n_prefix++] = id;
        if (seen_seq && t->n_suffix < TOK_MAX_TEMPLATE) t->suffix_ids[t->n_suffix++] = id;
    }
    return 0;
}

static int load_decoder(wk_tokenizer *t, const wk_json *d) {
    /* SPM decoders (Replace+ByteFallback+Fuse+Strip, or Metaspace) strip one leading space. */
    t->spm_strip_lead = t->kind == KIND_SPM && t->spm_prepend != 0;
    (void)d;
    return 0;
}

static int load_model(wk_tokenizer *t, const wk_json *root, const char *what, wk_err *err) {
    const wk_json *model = wk_json_get(root, "model");
    if (!model || model->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s: field model missing", what);
    const char *type = wk_json_get_string(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return wk_err_set(err, WK_EUNSUPPORTED, "%s: model.type '%.40s' is not supported (BPE only)", what, type);
    if (load_vocab(t, model, wk_json_get(root, "added_tokens"), what, err) || load_merges(t, model, what, err)) return err->code;
    t->byte_fallback = json_bool(model, "byte_fallback", 0);
    t->fuse_unk = json_bool(model, "fuse_unk", 0);
    t->ignore_merges = json_bool(model, "ignore_merges", 0);
    const char *unk = wk_json_get_string(model, "unk_token");
    t->unk_id = unk ? map_find(t, unk, strlen(unk)) : -1;
    const wk_json *csp = wk_json_get(model, "continuing_subword_prefix"), *eow = wk_json_get(model, "end_of_word_suffix");
    if ((csp && csp->type == WK_JSON_STRING && csp->string_len) || (eow && eow->type == WK_JSON_STRING && eow->string_len))
        return wk_err_set(err, WK_EUNSUPPORTED, "%s: model: continuing_subword_prefix / end_of_word_suffix not supported", what);
    return 0;
}

static int load_root(wk_tokenizer *t, const wk_json *root, const char *what, wk_err *err) {
    if (root->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s: not a JSON object", what);
    t->kind = KIND_SPM; /* until a ByteLevel pre-tokenizer says otherwise */
    if (load_model(t, root, what, err) || load_normalizer(t, wk_json_get(root, "normalizer"), what, err) ||
        load_pretok(t, wk_json_get(root, "pre_tokenizer"), what, err) ||
        load_template(t, wk_json_get(root, "post_processor"), what, err) || load_decoder(t, wk_json_get(root, "decoder")))
        return err->code;
    bytes_to_unicode(t);
    char name[8];
    for (int b = 0; b < 256; b++) {
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = map_find(t, name, strlen(name));
    }
    if (t->kind == KIND_BYTELEVEL) /* every byte must be encodable */
        for (int b = 0; b < 256; b++) {
            char u[4];
            uint32_t cp = t->byte_to_cp[b];
            size_t n = cp < 0x80 ? 1 : 2;
            if (n == 1) u[0] = (char)cp;
            else {
                u[0] = (char)(0xC0 | (cp >> 6));
                u[1] = (char)(0x80 | (cp & 0x3F));
            }
            if (map_find(t, u, n) < 0)
                return wk_err_set(err, WK_EFORMAT, "%s: byte-level vocab lacks the piece of byte 0x%02X", what, b);
        }
    return 0;
}

int wk_tokenizer_parse(const char *text, size_t len, const char *what, wk_tokenizer **out, wk_err *err) {
    *out = NULL;
    wk_json root;
    if (wk_json_parse(text, len, what, &root, err)) return err->code;
    wk_tokenizer *t = calloc(1, sizeof *t);
    int rc = t ? load_root(t, &root, what, err) : wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    wk_json_free(&root);
    if (rc) {
        wk_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int wk_tokenizer_load(const char *path, wk_tokenizer **out, wk_err *err) {
    *out = NULL;
    wk_json root;
    if (wk_json_parse_file(path, &root, err)) return err->code;
    wk_tokenizer *t = calloc(1, sizeof *t);
    int rc = t ? load_root(t, &root, path, err) : wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    wk_json_free(&root);
    if (rc) {
        wk_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int wk_tokenizer_load_dir(const char *dir, wk_tokenizer **out, wk_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return wk_tokenizer_load(path, out, err);
}

void wk_tokenizer_free(wk_tokenizer *t) {
    if (!t) return;
    for (int i = 0; t->pieces && i < t->n_vocab; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->is_special);
    free(t->map);
    free(t->merges);
    free(t->added);
    free(t);
}

/* ---- encoding -------------------------------------------------------------------------------- */

typedef struct {
    int rank, pos;     /* merge rank; position of the left symbol */
    int left, right;   /* the pair's ids when pushed (to detect stale entries) */
} bpe_cand;

typedef struct {
    int32_t *ids;
    size_t n, cap;
    int *sym;          /* BPE work [word symbols]: ids, -1 once merged away */
    int *prev, *next;  /* [word symbols] neighbours in the linked list, -1 at the ends */
    bpe_cand *heap;    /* [3 x word symbols] merge candidates */
    size_t sym_cap, prev_cap, next_cap, heap_cap;
    char *buf;     /* mapped text of the current word */
    size_t buf_cap;
    const wk_tokenizer *t;
    const char *text;
    int segment_first;
} enc_state;

static int push_id(enc_state *s, int id) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        int32_t *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids) return WK_ENOMEM;
        s->ids = ids;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = need * 2;
    void *q = realloc(*p, c * elem);
    if (!q) return WK_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* BPE merge candidates in a binary min-heap ordered by (rank, position): the lowest-ranked pair merges
 * first, the leftmost on ties, as HF tokenizers does. Entries go stale when a neighbour merges; they
 * are dropped when popped (the pair they name is no longer there). O(n log n) per word, so a long
 * SentencePiece segment (the whole text) stays fast. */
static int heap_less(const bpe_cand *x, const bpe_cand *y) { return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos; }

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0 && heap_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static void push_pair(enc_state *s, size_t *nh, int left, int right) {
    const merge_slot *m = merge_find(s->t, s->sym[left], s->sym[right]);
    if (m) heap_push(s->heap, nh, (bpe_cand){m->rank, left, s->sym[left], s->sym[right]});
}

/* Merges s->sym[0..n) (links in s->next/prev) and emits the surviving symbols in order. */
static int bpe_merge_emit(enc_state *s, size_t n) {
    const wk_tokenizer *t = s->t;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int)i - 1;
        s->next[i] = i + 1 < n ? (int)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) push_pair(s, &nh, (int)i, (int)i + 1);
    while (nh > 0) {
        bpe_cand c = heap_pop(s->heap, &nh);
        int l = c.pos, r = s->next[l];
        if (s->sym[l] != c.left || r < 0 || s->sym[r] != c.right) continue; /* stale */
        s->sym[l] = merge_find(t, c.left, c.right)->merged;
        s->sym[r] = -1;
        s->next[l] = s->next[r];
        if (s->next[r] >= 0) s->prev[s->next[r]] = l;
        if (s->prev[l] >= 0) push_pair(s, &nh, s->prev[l], l);
        if (s->next[l] >= 0) push_pair(s, &nh, l, s->next[l]);
    }
    int last_unk = 0;
    for (int i = n > 0 ? 0 : -1; i >= 0; i = s->next[i]) {
        if (s->sym[i] == t->unk_id && t->fuse_unk && last_unk) continue;
        last_unk = s->sym[i] == t->unk_id && t->unk_id >= 0;
        if (push_id(s, s->sym[i])) return WK_ENOMEM;
    }
    return 0;
}

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1; }

/* BPE over word w[0..n) whose characters are vocab pieces (or unknown: byte fallback / unk). */
static int bpe_word(enc_state *s, const char *w, size_t n) {
    const wk_tokenizer *t = s->t;
    if (t->ignore_merges) {
        int id = map_find(t, w, n);
        if (id >= 0) return push_id(s, id);
    }
    /* A character becomes at most 4 byte-fallback symbols, so n bytes give at most n symbols. */
    if (grow((void **)&s->sym, &s->sym_cap, n + 1, sizeof *s->sym) || grow((void **)&s->prev, &s->prev_cap, n + 1, sizeof *s->prev) ||
        grow((void **)&s->next, &s->next_cap, n + 1, sizeof *s->next) || grow((void **)&s->heap, &s->heap_cap, 3 * n + 1, sizeof *s->heap))
        return WK_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len((unsigned char)w[i]);
        if (i + cl > n) cl = n - i;
        int id = map_find(t, w + i, cl);
        if (id >= 0) s->sym[m++] = id;
        else if (t->byte_fallback && t->byte_ids[(unsigned char)w[i]] >= 0) {
            int ok = 1;
            for (size_t k = 0; k < cl; k++) ok = ok && t->byte_ids[(unsigned char)w[i + k]] >= 0;
            for (size_t k = 0; k < cl && ok; k++) s->sym[m++] = t->byte_ids[(unsigned char)w[i + k]];
            if (!ok) s->sym[m++] = t->unk_id;
        } else if (t->unk_id >= 0)
            s->sym[m++] = t->unk_id;
        else
            return WK_EFORMAT; /* no way to encode this character */
        i += cl;
    }
    return bpe_merge_emit(s, m);
}

/* Byte-level: map a pre-tokenized piece's bytes to their GPT-2 unicode chars, then BPE. */
static int bytelevel_piece(void *ctx, size_t start, size_t len) {
    enc_state *s = ctx;
    if (grow((void **)&s->buf, &s->buf_cap, len * 2 + 1, 1)) return WK_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = s->t->byte_to_cp[(unsigned char)s->text[start + i]];
        if (cp < 0x80) s->buf[o++] = (char)cp;
        else {
            s->buf[o++] = (char)(0xC0 | (cp >> 6));
            s->buf[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return bpe_word(s, s->buf, o);
}

static int encode_bytelevel(enc_state *s, const char *seg, size_t len) {
    const char *saved = s->text;
    char *tmp = NULL;
    if (s->t->add_prefix_space && len > 0 && seg[0] != ' ') { /* per segment, as HF ByteLevel */
        tmp = malloc(len + 1);
        if (!tmp) return WK_ENOMEM;
        tmp[0] = ' ';
        memcpy(tmp + 1, seg, len);
        seg = tmp;
        len++;
    }
    s->text = seg;
    int rc = s->t->pretok == WK_PRETOK_NONE ? bytelevel_piece(s, 0, len)
                                            : wk_tokenizer_pretok_split(s->t->pretok, seg, len, bytelevel_piece, s);
    s->text = saved;
    free(tmp);
    return rc;
}

/* SentencePiece style: spaces -> "▁", "▁" prepended per the scheme, then BPE on the whole segment. */
static int encode_spm(enc_state *s, const char *seg, size_t len) {
    if (grow((void **)&s->buf, &s->buf_cap, len * 3 + 4, 1)) return WK_ENOMEM;
    size_t o = 0;
    int prepend = s->t->spm_prepend == 2 || (s->t->spm_prepend == 1 && s->segment_first);
    if (s->t->spm_prepend_if_bare && seg[0] == ' ') prepend = 0;
    if (prepend) {
        memcpy(s->buf, "\xe2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (seg[i] == ' ') {
            memcpy(s->buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else
            s->buf[o++] = seg[i];
    }
    return bpe_word(s, s->buf, o);
}

static int encode_segment(enc_state *s, const char *seg, size_t len) {
    if (len == 0) return 0;
    int rc = s->t->kind == KIND_BYTELEVEL ? encode_bytelevel(s, seg, len) : encode_spm(s, seg, len);
    s->segment_first = 0;
    return rc;
}

/* Longest added token starting at text[i], or NULL. */
static const added_token *added_at(const wk_tokenizer *t, const char *text, size_t len, size_t i) {
    if (!t->added_first[(unsigned char)text[i]]) return NULL;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].len <= len - i && memcmp(text + i, t->added[k].content, t->added[k].len) == 0) return &t->added[k];
    return NULL;
}

int wk_tokenizer_encode(const wk_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n,
                        wk_err *err) {
    enc_state s = {.t = t, .text = text, .segment_first = 1};
    int rc = 0;
    for (int i = 0; (flags & WK_TOK_ADD_SPECIAL) && i < t->n_prefix && !rc; i++) rc = push_id(&s, t->prefix_ids[i]);
    size_t seg = 0;
    for (size_t i = 0; i < len && !rc;) {
        const added_token *a = t->n_added ? added_at(t, text, len, i) : NULL;
        if (!a) {
            i++;
            continue;
        }
        rc = encode_segment(&s, text + seg, i - seg);
        if (!rc) rc = push_id(&s, a->id);
        s.segment_first = 0;
        i += a->len;
        seg = i;
    }
    if (!rc) rc = encode_segment(&s, text + seg, len - seg);
    for (int i = 0; (flags & WK_TOK_ADD_SPECIAL) && i < t->n_suffix && !rc; i++) rc = push_id(&s, t->suffix_ids[i]);
    free(s.sym);
    free(s.prev);
    free(s.next);
    free(s.heap);
    free(s.buf);
    if (rc) {
        free(s.ids);
        *ids = NULL;
        *n = 0;
        return rc == WK_ENOMEM ? wk_err_set(err, rc, "tokenizer: out of memory")
                               : wk_err_set(err, rc, "tokenizer: text has a character the vocabulary cannot encode (no unk, no byte fallback)");
    }
    *ids = s.ids ? s.ids : calloc(1, sizeof **ids);
    *n = s.n;
    return *ids ? 0 : wk_err_set(err, WK_ENOMEM, "tokenizer: out of memory");
}

/* ---- decoding -------------------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static int sb_put(strbuf *b, const char *p, size_t n) {
    if (grow((void **)&b->s, &b->cap, b->n + n + 1, 1)) return WK_ENOMEM;
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}

static int is_added(const wk_tokenizer *t, int id) {
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id == id) return 1;
    return 0;
}

/* Byte-level piece: each char maps back to one byte. */
static int decode_bytelevel_piece(const wk_tokenizer *t, const char *p, size_t n, strbuf *b) {
    for (size_t i = 0; i < n;) {
        uint32_t cp = (unsigned char)p[i];
        size_t cl = 1;
        if (cp >= 0xC0 && cp < 0xE0 && i + 1 < n) {
            cp = ((cp & 0x1F) << 6) | ((unsigned char)p[i + 1] & 0x3F);
            cl = 2;
        }
        int byte = cp < 324 ? t->cp_to_byte[cp] : -1;
        char c = (char)byte;
        int rc = byte >= 0 ? sb_put(b, &c, 1) : sb_put(b, p + i, cl); /* foreign char: keep as is */
        if (rc) return rc;
        i += cl;
    }
    return 0;
}

static int decode_spm_piece(const wk_tokenizer *t, int id, const char *p, size_t n, strbuf *b) {
    for (int v = 0; v < 256; v++)
        if (t->byte_ids[v] == id) {
            char c = (char)v;
            return sb_put(b, &c, 1);
        }
    for (size_t i = 0; i < n;) {
        int rc;
        if (n - i >= 3 && memcmp(p + i, "\xe2\x96\x81", 3) == 0) {
            rc = sb_put(b, " ", 1);
            i += 3;
        } else {
            rc = sb_put(b, p + i, 1);
            i++;
        }
        if (rc) return rc;
    }
    return 0;
}

int wk_tokenizer_decode(const wk_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **out, size_t *len,
                        wk_err *err) {
    strbuf b = {0};
    int rc = sb_put(&b, "", 0);
    for (size_t i = 0; i < n && !rc; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->pieces[id]) {
            free(b.s);
            return wk_err_set(err, WK_EINVAL, "tokenizer: decode: id %d at index %zu not in vocabulary", id, i);
        }
        if (t->is_special[id] && (flags & WK_TOK_SKIP_SPECIAL)) continue;
        if (is_added(t, id)) rc = sb_put(&b, t->pieces[id], t->piece_len[id]);
        else if (t->kind == KIND_BYTELEVEL) rc = decode_bytelevel_piece(t, t->pieces[id], t->piece_len[id], &b);
        else rc = decode_spm_piece(t, id, t->pieces[id], t->piece_len[id], &b);
    }
    if (rc) {
        free(b.s);
        return wk_err_set(err, WK_ENOMEM, "tokenizer: out of memory");
    }
    if (t->spm_strip_lead && b.n > 0 && b.s[0] == ' ') {
        memmove(b.s, b.s + 1, b.n);
        b.n--;
    }
    *out = b.s;
    *len = b.n;
    return 0;
}

int wk_tokenizer_vocab_size(const wk_tokenizer *t) { return t->n_vocab; }
int wk_tokenizer_find(const wk_tokenizer *t, const char *piece) { return map_find(t, piece, strlen(piece)); }
const char *wk_tokenizer_piece(const wk_tokenizer *t, int id) { return id >= 0 && id < t->n_vocab ? t->pieces[id] : NULL; }
int wk_tokenizer_is_special(const wk_tokenizer *t, int id) { return id >= 0 && id < t->n_vocab && t->is_special[id]; }
int wk_tokenizer_bos(const wk_tokenizer *t) { return t->n_prefix > 0 ? t->prefix_ids[0] : -1; }
wk_pretok_kind wk_tokenizer_pretok(const wk_tokenizer *t) { return t->pretok; }
