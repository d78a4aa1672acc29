/* LongBench metrics against hand-computed cases (KV-ALGORITHMS.md 5.5-5.7), the LongBench reader
 * and prompt templates. Where a value is not worked out by hand in a comment, it was checked
 * against LongBench's metrics.py with pip rouge 1.0.1 (Python 3.11). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "exec/longbench.h"
#include "exec/metrics.h"
#include "tests/check_util.h"

static double score(wk_metric m, const char *pred, const char *gold) {
    double v;
    wk_err err;
    ck_assert_msg(wk_metric_score(m, pred, gold, NULL, 0, &v, &err) == 0, "%s", err.msg);
    return v;
}

static void norm_is(const char *in, const char *want) {
    char *out;
    wk_err err;
    ck_assert_int_eq(wk_metric_normalize_answer(in, &out, &err), 0);
    ck_assert_str_eq(out, want);
    free(out);
}

START_TEST(normalize_answer_order_and_articles) {
    norm_is("The Cat sat on the mat.", "cat sat on mat");
    norm_is("the-end", "theend");         /* punctuation goes first, so "the" is no longer a word */
    norm_is("a.b", "ab");
    norm_is("An apple a day", "apple day");
    norm_is("ANd THEN", "and then");      /* "an" inside "and" is not a word */
    norm_is("x_the_y", "xthey");          /* '_' is punctuation */
    norm_is("  it's   \"quoted\"\t\n", "its quoted");
    norm_is("The", "");
    norm_is("Café THE", "café");
    norm_is("ÉCOLE", "école");
    norm_is("the\xe2\x80\x99s dog", "\xe2\x80\x99s dog"); /* U+2019 is kept and is not a word character */
    norm_is("Th\xc3\xa9\xc3\xa2tre\xc2\xa0" "an", "th\xc3\xa9\xc3\xa2tre"); /* NBSP splits words */
    norm_is("a\xcc\x81 b", "\xcc\x81 b");   /* a combining mark is not \w: "a" is an article */
}
END_TEST

START_TEST(qa_f1_hand_cases) {
    ck_assert_double_eq(score(WK_METRIC_QA_F1, "The Cat sat on the mat.", "a cat sat on mat"), 1.0);
    /* [paris, france] vs [paris]: P = 1/2, R = 1, F = 2*0.5*1/1.5 */
    ck_assert_double_eq_tol(score(WK_METRIC_QA_F1, "Paris, France", "paris"), 2.0 / 3.0, 1e-15);
    /* [apple, day] vs [apple, apple, day]: bag overlap 2, P = 1, R = 2/3, F = 0.8 */
    ck_assert_double_eq_tol(score(WK_METRIC_QA_F1, "An apple a day", "apple apple day"), 0.8, 1e-15);
    ck_assert_double_eq(score(WK_METRIC_QA_F1, "the-end", "the end"), 0.0);
    ck_assert_double_eq(score(WK_METRIC_QA_F1, "The", "the"), 0.0); /* empty after normalisation */
    ck_assert_double_eq(score(WK_METRIC_QA_F1, "", ""), 0.0);
    /* [x, x, y] vs [x, y, y]: overlap min(2,1)+min(1,2) = 2, P = R = 2/3 */
    ck_assert_double_eq_tol(score(WK_METRIC_QA_F1, "x x y", "x y y"), 2.0 / 3.0, 1e-15);
    ck_assert_double_eq(score(WK_METRIC_EM, "The  Answer!", "answer"), 1.0);
    ck_assert_double_eq(score(WK_METRIC_EM, "answers", "answer"), 0.0);
}
END_TEST

START_TEST(rouge_l_hand_cases) {
    /* one sentence each; sets m = {the,cat,is,on,mat} = 5, n = 5; LCS "the cat on the mat" has 4
     * distinct words: R = P = 0.8, F = 2*(0.64/(1.6+1e-8)) */
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "the cat sat on the mat", "the cat is on the mat"),
                            2.0 * (0.64 / (1.6 + 1e-8)), 1e-15);
    /* the backtrack tie rule picks "b c" (2 distinct words), not "a a" (1): R = P = 2/3 */
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "b c a a", "a a b c"), 0.6666666616666668, 1e-15);
    /* the union example of the rouge docstring: union {w1,w2,w3,w5} = 4, m = 5, n = 8 */
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "w1 w2 w6 w7 w8. w1 w3 w8 w9 w5", "w1 w2 w3 w4 w5"),
                            2.0 * ((0.5 * 0.8) / (1.3 + 1e-8)), 1e-15);
    /* a whitespace-only piece is the sentence "" with the word "": n = |{cat, "", dog}| = 3 */
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "cat. . dog", "cat dog"), 0.7999999952000001, 1e-15);
    ck_assert_double_eq(score(WK_METRIC_ROUGE_L, "Cat", "cat"), 0.0);  /* no lowercasing */
    ck_assert_double_eq(score(WK_METRIC_ROUGE_L, "", "cat"), 0.0);     /* ValueError -> 0 */
    ck_assert_double_eq(score(WK_METRIC_ROUGE_L, "...", "cat"), 0.0);
    ck_assert_double_eq(score(WK_METRIC_ROUGE_L, "cat", "..."), 0.0);
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "  the  cat\tsat.\n\nOn the mat. ", "the cat sat on the mat."),
                            0.7272727223140496, 1e-15);
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "a b c d e f", "f e d c b a. a c e"), 0.4999999950000001, 1e-15);
    ck_assert_double_eq_tol(score(WK_METRIC_ROUGE_L, "x y. x y", "y x. x. y"), 0.999999995, 1e-15);
}
END_TEST

/* eval.py's recursion limit: a backtrack of 990 steps scores, 991 steps raises and scores 0 */
START_TEST(rouge_l_recursion_limit) {
    for (int ly = 990; ly <= 991; ly++) {
        char *hyp = malloc(8 * 1000);
        size_t n = 0;
        for (int i = 0; i < ly; i++) n += (size_t)sprintf(hyp + n, i ? " h%d" : "h%d", i);
        double v = score(WK_METRIC_ROUGE_L, hyp, "r0 r1 h0");
        if (ly == 990) ck_assert_double_eq_tol(v, 0.0020140986305954385, 1e-15);
        else ck_assert_double_eq(v, 0.0);
        free(hyp);
    }
}
END_TEST

START_TEST(classification_retrieval_count) {
    const char *classes[] = {"Animal", "Ani", "Food", "Animal"};
    double v;
    wk_err err;
    /* matches [Animal, Ani, Animal]; removing "Ani" (substring of gold) skips the element after it */
    ck_assert_int_eq(wk_metric_score(WK_METRIC_CLASSIFICATION, "Animal or Ani", "Animal", classes, 4, &v, &err), 0);
    ck_assert_double_eq(v, 0.5); /* [Animal, Animal] left: 1/2 */
    ck_assert_int_eq(wk_metric_score(WK_METRIC_CLASSIFICATION, "Food", "Animal", classes, 4, &v, &err), 0);
    ck_assert_double_eq(v, 0.0);
    ck_assert_int_eq(wk_metric_score(WK_METRIC_CLASSIFICATION, "Food and Animal", "Food", classes, 3, &v, &err), 0);
    ck_assert_double_eq(v, 1.0 / 3.0); /* Animal, Ani, Food all match; none is inside "Food" */
    /* [Ani, Anim, Animal]: removing "Ani" makes the loop skip "Anim", which stays: 1/2, not 1 */
    const char *nested[] = {"Ani", "Anim", "Animal"};
    ck_assert_int_eq(wk_metric_score(WK_METRIC_CLASSIFICATION, "Animal", "Animal", nested, 3, &v, &err), 0);
    ck_assert_double_eq(v, 0.5);
    ck_assert_double_eq(score(WK_METRIC_RETRIEVAL, "Paragraph 12, not 3", "Paragraph 12"), 0.5);
    ck_assert_double_eq(score(WK_METRIC_RETRIEVAL, "Paragraph 123", "Paragraph 12"), 0.0);
    ck_assert_double_eq(score(WK_METRIC_RETRIEVAL, "no number", "Paragraph 12"), 0.0);
    ck_assert_double_eq(score(WK_METRIC_COUNT, "7 7 8", "7"), 2.0 / 3.0);
}
END_TEST

START_TEST(contains_and_sample_rules) {
    ck_assert_double_eq(score(WK_METRIC_CONTAINS, "The pass key is 71432.", "71432"), 1.0);
    ck_assert_double_eq(score(WK_METRIC_CONTAINS, "714321", "71432"), 0.0); /* token boundaries */
    ck_assert_double_eq(score(WK_METRIC_CONTAINS, "It was The History of Chess!", "the history of chess"), 1.0);
    ck_assert_double_eq(score(WK_METRIC_CONTAINS, "anything", ""), 0.0);
    const char *vars[] = {"ABCDE", "FGHIJ", "KLMNO", "PQRST"};
    double v;
    wk_err err;
    ck_assert_int_eq(wk_metric_score_sample(WK_METRIC_CONTAINS_ALL, "vartrack", "ABCDE, KLMNO and abcde", vars, 4,
                                            NULL, 0, &v, &err), 0);
    ck_assert_double_eq(v, 0.5);
    /* max over answers */
    const char *golds[] = {"paris", "paris france"};
    ck_assert_int_eq(wk_metric_score_sample(WK_METRIC_QA_F1, "hotpotqa", "Paris, France", golds, 2, NULL, 0, &v, &err),
                     0);
    ck_assert_double_eq(v, 1.0);
    /* triviaqa keeps only the first line after leading newlines; hotpotqa keeps all */
    const char *g1[] = {"paris"};
    ck_assert_int_eq(wk_metric_score_sample(WK_METRIC_QA_F1, "triviaqa", "\n\nParis\nLondon", g1, 1, NULL, 0, &v, &err), 0);
    ck_assert_double_eq(v, 1.0);
    ck_assert_int_eq(wk_metric_score_sample(WK_METRIC_QA_F1, "hotpotqa", "\n\nParis\nLondon", g1, 1, NULL, 0, &v, &err), 0);
    ck_assert_double_eq_tol(v, 2.0 / 3.0, 1e-15);
    wk_metric m;
    ck_assert_int_eq(wk_metric_for_dataset("gov_report", &m, &err), 0);
    ck_assert_int_eq(m, WK_METRIC_ROUGE_L);
    ck_assert_int_eq(wk_metric_for_dataset("triviaqa_e", &m, &err), 0);
    ck_assert_int_eq(m, WK_METRIC_QA_F1);
    ck_assert_int_eq(wk_metric_for_dataset("vartrack", &m, &err), 0);
    ck_assert_int_eq(m, WK_METRIC_CONTAINS_ALL);
    ck_assert_int_eq(wk_metric_for_dataset("lcc", &m, &err), WK_EUNSUPPORTED);
    ck_assert_int_eq(wk_metric_for_dataset("nope", &m, &err), WK_ENOTFOUND);
}
END_TEST

START_TEST(longbench_reader_fields_and_errors) {
    const char *ok = "{\"context\": \"C\", \"input\": \"Q?\", \"answers\": [\"a\", \"b\"], \"length\": 12, "
                     "\"dataset\": \"hotpotqa\", \"all_classes\": null, \"_id\": \"x1\"}\n\r\n"
                     "{\"context\": \"D\", \"input\": \"\", \"answers\": [\"c\"], \"all_classes\": [\"k\", \"l\"]}\n";
    wk_lb_set set;
    wk_err err;
    ck_assert_int_eq(wk_longbench_parse(ok, strlen(ok), "f.jsonl", WK_LB_NEED_CONTEXT | WK_LB_NEED_ANSWERS, &set, &err),
                     0);
    ck_assert_uint_eq(set.count, 2);
    ck_assert_str_eq(set.items[0].dataset, "hotpotqa");
    ck_assert_uint_eq(set.items[0].n_answers, 2);
    ck_assert_str_eq(set.items[0].answers[1], "b");
    ck_assert_int_eq(set.items[0].length, 12);
    ck_assert_uint_eq(set.items[0].n_classes, 0);
    ck_assert_uint_eq(set.items[1].line, 3);
    ck_assert_uint_eq(set.items[1].n_classes, 2);
    ck_assert_int_eq(set.items[1].length, -1);
    wk_longbench_free(&set);
    struct { const char *text, *msg; } bad[] = {
        {"{\"context\": \"C\", \"answers\": [\"a\"]}", "f.jsonl:1: field 'input': missing"},
        {"\n{\"context\": \"C\", \"input\": \"q\", \"answers\": \"a\"}", "f.jsonl:2: field 'answers': expected an array"},
        {"{\"context\": \"C\", \"input\": \"q\", \"answers\": [1]}", "f.jsonl:1: field 'answers': element 0"},
        {"{\"context\": \"C\", \"input\": \"q\", \"answers\": [\"a\"], \"length\": -3}", "f.jsonl:1: field 'length'"},
        {"{\"context\": \"C\\u0000\", \"input\": \"q\", \"answers\": [\"a\"]}", "f.jsonl:1: field 'context': contains a NUL"},
        {"{\"context\": 5, \"input\": \"q\", \"answers\": [\"a\"]}", "f.jsonl:1: field 'context': expected a string"},
        {"{\"context\": \"C\", \"input\": \"q\", \"answers\": []}", "f.jsonl:1: field 'answers': empty list"},
        {"[1]", "f.jsonl:1: expected a JSON object"},
        {"{\"context\": ", "f.jsonl:1: line 1, offset"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(wk_longbench_parse(bad[i].text, strlen(bad[i].text), "f.jsonl",
                                            WK_LB_NEED_CONTEXT | WK_LB_NEED_ANSWERS, &set, &err), WK_EFORMAT);
        ck_assert_msg(strstr(err.msg, bad[i].msg) == err.msg, "case %zu: %s", i, err.msg);
        ck_assert_uint_eq(set.count, 0);
    }
    const char *pred = "{\"pred\": \"x\", \"answers\": [\"x\"], \"task\": \"passkey\"}";
    ck_assert_int_eq(wk_longbench_parse(pred, strlen(pred), "p", WK_LB_NEED_PRED | WK_LB_NEED_ANSWERS, &set, &err), 0);
    ck_assert_str_eq(set.items[0].dataset, "passkey");
    wk_longbench_free(&set);
}
END_TEST

START_TEST(templates_exact_and_format) {
    const char *t = wk_longbench_template("hotpotqa");
    ck_assert_ptr_nonnull(t);
    char *p;
    wk_err err;
    ck_assert_int_eq(wk_longbench_format(t, "CTX", "Q?", &p, &err), 0);
    ck_assert_str_eq(p, "Answer the question based on the given passages. Only give me the answer and do not output "
                        "any other words.\n\nThe following are given passages.\nCTX\n\nAnswer the question based on the "
                        "given passages. Only give me the answer and do not output any other words.\n\nQuestion: Q?\n"
                        "Answer:");
    free(p);
    ck_assert(strstr(wk_longbench_template("narrativeqa"), "question asconcisely as you can") != NULL);
    ck_assert(strstr(wk_longbench_template("qasper"), "{context}\n\n Answer the question") != NULL);
    ck_assert(strstr(wk_longbench_template("qasper"), "write \"unanswerable\".") != NULL);
    ck_assert_str_eq(wk_longbench_template("triviaqa") + strlen(wk_longbench_template("triviaqa")) - 20,
                     "\n\n{context}\n\n{input}");
    ck_assert_ptr_null(wk_longbench_template("unknown"));
    ck_assert_ptr_eq(wk_longbench_template("hotpotqa_e"), wk_longbench_template("hotpotqa"));
    const char *pr = wk_longbench_template("passage_retrieval_en");
    ck_assert_str_eq(pr + strlen(pr) - 51, "\"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ");
    ck_assert_str_eq(wk_longbench_template("passkey"), "{context}\n\nQuestion: {input}\nAnswer:");
    ck_assert_int_eq(wk_longbench_format("{{a}} {context}{input}}}", "C", "I", &p, &err), 0);
    ck_assert_str_eq(p, "{a} CI}");
    free(p);
    ck_assert_int_eq(wk_longbench_format("{other}", "C", "I", &p, &err), WK_EINVAL);
    ck_assert_int_eq(wk_longbench_format("x }", "C", "I", &p, &err), WK_EINVAL);
    ck_assert_ptr_null(p);
}
END_TEST

/* 400 random pairs scored by LongBench's own Python (tools/longbench_metric_ref.py): same doubles */
START_TEST(matches_python_reference_vectors) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/longbench_metric_ref.jsonl", WIKV_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char line[1 << 14];
    size_t n = 0, nonzero = 0;
    while (fgets(line, sizeof line, f)) {
        wk_json doc;
        wk_err err;
        ck_assert_msg(wk_json_parse(line, strlen(line), path, &doc, &err) == 0, "%s", err.msg);
        const char *pred = wk_json_get_string(&doc, "pred"), *gold = wk_json_get_string(&doc, "gold");
        double f1, rl;
        ck_assert_int_eq(wk_json_get_number(&doc, "qa_f1", -1, &f1, &err), 0);
        ck_assert_int_eq(wk_json_get_number(&doc, "rouge", -1, &rl, &err), 0);
        ck_assert_msg(score(WK_METRIC_QA_F1, pred, gold) == f1, "line %zu qa_f1", n + 1);
        ck_assert_msg(score(WK_METRIC_ROUGE_L, pred, gold) == rl, "line %zu rouge", n + 1);
        char *norm;
        ck_assert_int_eq(wk_metric_normalize_answer(pred, &norm, &err), 0);
        ck_assert_msg(strcmp(norm, wk_json_get_string(&doc, "norm")) == 0, "line %zu norm", n + 1);
        free(norm);
        nonzero += f1 > 0 && rl > 0;
        wk_json_free(&doc);
        n++;
    }
    fclose(f);
    ck_assert_uint_eq(n, 400);
    ck_assert_uint_gt(nonzero, 20);
}
END_TEST

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/wikv_score_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static char *run_capture(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf - 1, p);
    buf[len] = '\0';
    *status = pclose(p);
    return buf;
}

START_TEST(score_command_table_and_errors) {
    char *good = write_tmp(
        "{\"pred\": \"Paris, France\", \"answers\": [\"paris\"], \"dataset\": \"hotpotqa\", \"length\": 3000}\n"
        "{\"pred\": \"\\n\\nParis\\nLondon\", \"answers\": [\"x\", \"paris\"], \"dataset\": \"triviaqa\", \"length\": 9000}\n"
        "{\"pred\": \"London\", \"answers\": [\"paris\"], \"dataset\": \"hotpotqa\", \"length\": 5000}\n"
        "{\"pred\": \"VAR ABCDE\", \"answers\": [\"ABCDE\", \"FGHIJ\"], \"task\": \"vartrack\", \"length\": 10}\n");
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "%s score --buckets %s", WIKV_BINARY, good);
    char *out = run_capture(cmd, &st);
    ck_assert_int_eq(st, 0);
    /* hotpotqa: (2/3 + 0) / 2 = 33.33; buckets 66.67 (3000) and 0.00 (5000) */
    ck_assert_msg(strstr(out, "hotpotqa                 qa_f1                2    33.33    66.67     0.00        -"), "%s", out);
    ck_assert_msg(strstr(out, "triviaqa                 qa_f1                1   100.00"), "%s", out);
    ck_assert_msg(strstr(out, "vartrack                 contains_all         1    50.00"), "%s", out);
    char *bad = write_tmp("{\"pred\": \"a\", \"answers\": [\"a\"], \"dataset\": \"hotpotqa\"}\n\n{\"answers\": [\"a\"]}\n");
    snprintf(cmd, sizeof cmd, "%s score %s 2>&1", WIKV_BINARY, bad);
    out = run_capture(cmd, &st);
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    char want[256];
    snprintf(want, sizeof want, "%s:3: field 'pred': missing", bad);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s score --metric nope %s 2>&1", WIKV_BINARY, good);
    run_capture(cmd, &st);
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    /* no dataset field: the file name is the dataset, so triviaqa's first-line rule applies */
    char dir[] = "/tmp/wikv_scoredir_XXXXXX", file[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/triviaqa.jsonl", dir);
    FILE *f = fopen(file, "w");
    fputs("{\"pred\": \"\\nParis\\nLondon\", \"answers\": [\"paris\"], \"all_classes\": null, \"length\": 9}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s score %s", WIKV_BINARY, file);
    out = run_capture(cmd, &st);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(strstr(out, "triviaqa                 qa_f1                1   100.00"), "%s", out);
    unlink(file);
    rmdir(dir);
    unlink(good);
    unlink(bad);
    free(good);
    free(bad);
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, normalize_answer_order_and_articles);
    tcase_add_test(tc, qa_f1_hand_cases);
    tcase_add_test(tc, rouge_l_hand_cases);
    tcase_add_test(tc, rouge_l_recursion_limit);
    tcase_add_test(tc, classification_retrieval_count);
    tcase_add_test(tc, contains_and_sample_rules);
    tcase_add_test(tc, longbench_reader_fields_and_errors);
    tcase_add_test(tc, templates_exact_and_format);
    tcase_add_test(tc, score_command_table_and_errors);
    tcase_add_test(tc, matches_python_reference_vectors);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
