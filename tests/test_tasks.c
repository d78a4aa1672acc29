/* Synthetic long-context tasks: determinism, seed sensitivity, answers placed where they must be,
 * lengths near the target, and the `wikv task gen` command. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "exec/tasks.h"
#include "tests/check_util.h"

static wk_task_item gen(wk_task_kind k, uint64_t seed, size_t tokens) {
    wk_task_item it;
    wk_err err;
    ck_assert_msg(wk_task_generate(k, seed, tokens, &it, &err) == 0, "%s", err.msg);
    return it;
}

static size_t count_sub(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

START_TEST(rng_is_deterministic_and_unbiased_range) {
    wk_rng a, b;
    wk_rng_seed(&a, 42);
    wk_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(wk_rng_next(&a), wk_rng_next(&b));
    wk_rng_seed(&b, 43);
    ck_assert_uint_ne(wk_rng_next(&a), wk_rng_next(&b));
    unsigned hist[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = wk_rng_below(&a, 7);
        ck_assert_uint_lt(v, 7);
        hist[v]++;
    }
    for (int i = 0; i < 7; i++) ck_assert_msg(hist[i] > 850 && hist[i] < 1150, "bucket %d: %u", i, hist[i]);
}
END_TEST

START_TEST(same_inputs_give_same_bytes) {
    for (int k = 0; k < WK_TASK_KINDS; k++) {
        wk_task_item a = gen((wk_task_kind)k, 7, 2000), b = gen((wk_task_kind)k, 7, 2000);
        ck_assert_str_eq(a.context, b.context);
        ck_assert_str_eq(a.input, b.input);
        ck_assert_uint_eq(a.n_answers, b.n_answers);
        for (size_t i = 0; i < a.n_answers; i++) ck_assert_str_eq(a.answers[i], b.answers[i]);
        wk_task_item_free(&a);
        wk_task_item_free(&b);
    }
}
END_TEST

START_TEST(different_seeds_or_lengths_differ) {
    for (int k = 0; k < WK_TASK_KINDS; k++) {
        wk_task_item a = gen((wk_task_kind)k, 7, 2000), b = gen((wk_task_kind)k, 8, 2000);
        wk_task_item c = gen((wk_task_kind)k, 7, 2001);
        ck_assert_str_ne(a.context, b.context);
        ck_assert_str_ne(a.context, c.context);
        wk_task_item_free(&a);
        wk_task_item_free(&b);
        wk_task_item_free(&c);
    }
    /* passkeys over many seeds are not all the same (the key depends on the seed) */
    int differ = 0;
    wk_task_item first = gen(WK_TASK_PASSKEY, 0, 256);
    for (uint64_t s = 1; s < 20; s++) {
        wk_task_item it = gen(WK_TASK_PASSKEY, s, 256);
        differ += strcmp(it.answers[0], first.answers[0]) != 0;
        wk_task_item_free(&it);
    }
    ck_assert_int_ge(differ, 18);
    wk_task_item_free(&first);
}
END_TEST

START_TEST(lengths_near_target) {
    size_t sizes[] = {256, 1000, 4000, 16000};
    for (int k = 0; k < WK_TASK_KINDS; k++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            wk_task_item it = gen((wk_task_kind)k, 3 + i, sizes[i]);
            size_t want = sizes[i] * WK_TASK_CHARS_PER_TOKEN, got = strlen(it.context);
            ck_assert_msg(got + 130 >= want && got <= want + 130, "%s %zu tokens: %zu chars", wk_task_name(it.kind),
                          sizes[i], got);
            ck_assert_uint_gt(it.length, got / 8); /* words, as LongBench counts them */
            ck_assert_uint_lt(it.length, got / 3);
            wk_task_item_free(&it);
        }
}
END_TEST

START_TEST(passkey_hidden_once_at_varied_depth) {
    int shallow = 0, deep = 0;
    for (uint64_t s = 0; s < 40; s++) {
        wk_task_item it = gen(WK_TASK_PASSKEY, s, 4000);
        ck_assert_uint_eq(it.n_answers, 1);
        ck_assert_uint_eq(strlen(it.answers[0]), 5);
        char needle[64];
        snprintf(needle, sizeof needle, "The pass key is %s. Remember it. %s is the pass key.", it.answers[0],
                 it.answers[0]);
        const char *at = strstr(it.context, needle);
        ck_assert_ptr_nonnull(at);
        ck_assert_uint_eq(count_sub(it.context, it.answers[0]), 2); /* only in the needle: filler has no digits */
        double depth = (double)(at - it.context) / (double)strlen(it.context);
        shallow += depth < 0.3;
        deep += depth > 0.7;
        ck_assert_str_eq(it.input, "What is the pass key?");
        wk_task_item_free(&it);
    }
    ck_assert_int_ge(shallow, 3);
    ck_assert_int_ge(deep, 3);
}
END_TEST

START_TEST(multikey_asked_key_has_its_value) {
    for (uint64_t s = 0; s < 20; s++) {
        wk_task_item it = gen(WK_TASK_MULTIKEY, s, 8000);
        const char *key = it.input + strlen("What is the value of key ");
        ck_assert_int_eq(strncmp(it.input, "What is the value of key ", 25), 0);
        char k[16] = {0};
        memcpy(k, key, 13);
        char fact[96];
        snprintf(fact, sizeof fact, "The value of key %s is %s.", k, it.answers[0]);
        ck_assert_uint_eq(count_sub(it.context, fact), 1);
        ck_assert_uint_eq(count_sub(it.context, "One of the special keys is"), 32); /* 32000 chars / 1000 */
        ck_assert_uint_eq(count_sub(it.context, it.answers[0]), 1);
        wk_task_item_free(&it);
    }
}
END_TEST

START_TEST(topic_answer_is_first_topic) {
    for (uint64_t s = 0; s < 20; s++) {
        wk_task_item it = gen(WK_TASK_TOPIC, s, 3000);
        char first[128];
        snprintf(first, sizeof first, "USER: I would like to discuss the topic of %s.", it.answers[0]);
        const char *at = strstr(it.context, first);
        const char *any = strstr(it.context, "USER: I would like to discuss the topic of");
        ck_assert_ptr_nonnull(at);
        ck_assert_ptr_eq(at, any);
        ck_assert_uint_eq(count_sub(it.context, "I would like to discuss the topic of the"), 8); /* 12000/1500 */
        ck_assert(strstr(it.context, "conversation on 8 different topics") != NULL);
        wk_task_item_free(&it);
    }
}
END_TEST

START_TEST(vartrack_chain_reads_in_order) {
    int asked_second = 0;
    for (uint64_t s = 0; s < 20; s++) {
        wk_task_item it = gen(WK_TASK_VARTRACK, s, 2000);
        ck_assert_uint_eq(it.n_answers, 5);
        unsigned value;
        ck_assert_int_eq(sscanf(it.input, "Find all variables that are assigned the value %u", &value), 1);
        char stmt[64];
        snprintf(stmt, sizeof stmt, "VAR %s = %u.", it.answers[0], value);
        const char *prev = strstr(it.context, stmt);
        ck_assert_ptr_nonnull(prev);
        for (size_t i = 1; i < it.n_answers; i++) {
            snprintf(stmt, sizeof stmt, "VAR %s = VAR %s.", it.answers[i], it.answers[i - 1]);
            const char *at = strstr(it.context, stmt);
            ck_assert_msg(at && at > prev, "hop %zu out of order", i);
            prev = at;
        }
        ck_assert_uint_eq(count_sub(it.context, "VAR "), 2 * 5 + 2 * 4); /* two chains of five variables */
        asked_second += strstr(it.context, "VAR ") + 4 != strstr(it.context, it.answers[0]);
        wk_task_item_free(&it);
    }
    ck_assert_int_ge(asked_second, 4); /* the asked chain is not always the one that starts first */
    ck_assert_int_le(asked_second, 16);
}
END_TEST

START_TEST(rejects_bad_length) {
    wk_task_item it;
    wk_err err;
    ck_assert_int_eq(wk_task_generate(WK_TASK_PASSKEY, 1, 10, &it, &err), WK_EINVAL);
    ck_assert(strstr(err.msg, "out of range") != NULL);
    wk_task_kind k;
    ck_assert_int_eq(wk_task_kind_parse("mix", &k, &err), WK_EINVAL);
    ck_assert_int_eq(wk_task_kind_parse("topic", &k, &err), 0);
    ck_assert_int_eq(k, WK_TASK_TOPIC);
    ck_assert_str_eq(wk_task_metric(WK_TASK_VARTRACK), "contains_all");
    /* the smallest context still holds every answer, even where the task text alone is longer */
    for (int t = 0; t < WK_TASK_KINDS; t++) {
        wk_task_item it = gen((wk_task_kind)t, 5, WK_TASK_MIN_TOKENS);
        for (size_t i = 0; i < it.n_answers; i++) ck_assert_ptr_nonnull(strstr(it.context, it.answers[i]));
        wk_task_item_free(&it);
    }
}
END_TEST

static char *run_capture(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    *status = pclose(p);
    return buf;
}

START_TEST(cli_writes_parsable_jsonl) {
    int st;
    char *out = run_capture(WIKV_BINARY " task gen --task mix --context 300 --seed 100 --n 4", &st);
    ck_assert_int_eq(st, 0);
    const char *names[] = {"passkey", "multikey", "topic", "vartrack"}; /* 100..103 mod 4 */
    char *line = out;
    for (int i = 0; i < 4; i++) {
        char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        wk_json doc;
        wk_err err;
        ck_assert_msg(wk_json_parse(line, (size_t)(nl - line), "out", &doc, &err) == 0, "%s", err.msg);
        ck_assert_str_eq(wk_json_get_string(&doc, "task"), names[i]);
        long long seed;
        ck_assert_int_eq(wk_json_get_int(&doc, "seed", -1, &seed, &err), 0);
        ck_assert_int_eq(seed, 100 + i);
        wk_task_item it = gen((wk_task_kind)i, 100 + i, 300);
        ck_assert_str_eq(wk_json_get_string(&doc, "context"), it.context);
        ck_assert_str_eq(wk_json_get_string(&doc, "input"), it.input);
        ck_assert_str_eq(wk_json_at(wk_json_get(&doc, "answers"), 0)->string, it.answers[0]);
        wk_task_item_free(&it);
        wk_json_free(&doc);
        line = nl + 1;
    }
    ck_assert_str_eq(line, "");
    free(out);
    out = run_capture(WIKV_BINARY " task gen --task nope --context 300 --seed 1 2>/dev/null", &st);
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    free(out);
    out = run_capture(WIKV_BINARY " task gen --task passkey --context 3x --seed 1 2>/dev/null", &st);
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    free(out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("tasks");
    tcase_add_test(tc, rng_is_deterministic_and_unbiased_range);
    tcase_add_test(tc, same_inputs_give_same_bytes);
    tcase_add_test(tc, different_seeds_or_lengths_differ);
    tcase_add_test(tc, lengths_near_target);
    tcase_add_test(tc, passkey_hidden_once_at_varied_depth);
    tcase_add_test(tc, multikey_asked_key_has_its_value);
    tcase_add_test(tc, topic_answer_is_first_topic);
    tcase_add_test(tc, vartrack_chain_reads_in_order);
    tcase_add_test(tc, rejects_bad_length);
    tcase_add_test(tc, cli_writes_parsable_jsonl);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
