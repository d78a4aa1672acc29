/* Results store: runs are complete or invisible; crashes lose nothing committed; bad files are named. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/results.h"
#include "tests/check_util.h"

static void temp_db(char *path, size_t cap) {
    snprintf(path, cap, "/tmp/wikv_results_%d_XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path);
}

static int count(wk_results *db, const char *sql) {
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(wk_results_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void add_rows(wk_results *db, int64_t run, int n) {
    wk_err err;
    for (int i = 0; i < n; i++) {
        wk_request_row row = wk_results_empty_row("sim");
        row.policy = "full";
        row.trace = "t";
        row.ttft_s = 1.0 + i;
        int64_t id;
        ck_assert_msg(wk_results_add_request(db, run, &row, &id, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(wk_results_add_event(db, id, 0, 0.5, "token", 0, 1, &err), 0);
    }
}

START_TEST(complete_run_is_visible) {
    char path[256];
    temp_db(path, sizeof path);
    wk_results *db;
    wk_err err;
    ck_assert_msg(wk_results_open(path, &db, &err) == 0, "%s", err.msg);
    int64_t run;
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "test", &run, &err), 0);
    add_rows(db, run, 5);
    ck_assert_int_eq(wk_results_finish_run(db, run, &err), 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM complete_requests"), 5);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM events"), 5);
    /* a failed run leaves nothing of its requests */
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "test", &run, &err), 0);
    add_rows(db, run, 3);
    ck_assert_int_eq(wk_results_fail_run(db, run, "because", &err), 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM requests"), 5);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM runs WHERE status = 'failed'"), 1);
    wk_results_close(db);
    unlink(path);
}
END_TEST

/* A process killed in the middle of a run: the earlier complete run is intact, the killed run is
 * 'running' with no requests. */
START_TEST(killed_run_loses_nothing_committed) {
    char path[256];
    temp_db(path, sizeof path);
    wk_results *db;
    wk_err err;
    ck_assert_int_eq(wk_results_open(path, &db, &err), 0);
    int64_t run;
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "first", &run, &err), 0);
    add_rows(db, run, 4);
    ck_assert_int_eq(wk_results_finish_run(db, run, &err), 0);
    wk_results_close(db);
    pid_t pid = fork();
    if (pid == 0) {
        wk_results *child;
        if (wk_results_open(path, &child, &err)) _exit(3);
        int64_t r;
        if (wk_results_begin_run(child, "sim", "killed", &r, &err)) _exit(4);
        for (int i = 0; i < 1000; i++) {
            wk_request_row row = wk_results_empty_row("sim");
            row.policy = "kivi2";
            wk_results_add_request(child, r, &row, NULL, &err);
        }
        _exit(0); /* dies with the transaction open: as kill -9 would */
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(wk_results_open(path, &db, &err), 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM complete_requests"), 4);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM requests"), 4);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM runs WHERE status = 'running'"), 1);
    wk_results_close(db);
    unlink(path);
}
END_TEST

START_TEST(foreign_and_corrupt_files_are_named) {
    char path[256];
    temp_db(path, sizeof path);
    sqlite3 *raw;
    ck_assert_int_eq(sqlite3_open(path, &raw), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw, "CREATE TABLE other(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    wk_results *db;
    wk_err err;
    ck_assert_int_eq(wk_results_open(path, &db, &err), WK_EDB);
    ck_assert_msg(strstr(err.msg, "not a wikv results database") != NULL, "%s", err.msg);
    unlink(path);
    FILE *f = fopen(path, "w");
    fputs("this is not sqlite at all, just some text that is long enough to look like a header......", f);
    fclose(f);
    ck_assert_int_eq(wk_results_open(path, &db, &err), WK_EDB);
    ck_assert_msg(strstr(err.msg, path) != NULL && strstr(err.msg, "corrupt") != NULL, "%s", err.msg);
    unlink(path);
    /* another schema version is refused */
    ck_assert_int_eq(sqlite3_open(path, &raw), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    ck_assert_int_eq(wk_results_open(path, &db, &err), WK_EDB);
    ck_assert_msg(strstr(err.msg, "schema version 99") != NULL, "%s", err.msg);
    unlink(path);
}
END_TEST

/* The disk fills up in the middle of a run (SQLite's page limit stands in for a full device): the
 * error says so and the earlier complete run stays. */
START_TEST(full_disk_keeps_earlier_runs) {
    char path[256];
    temp_db(path, sizeof path);
    wk_results *db;
    wk_err err;
    ck_assert_int_eq(wk_results_open(path, &db, &err), 0);
    int64_t run;
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "first", &run, &err), 0);
    add_rows(db, run, 3);
    ck_assert_int_eq(wk_results_finish_run(db, run, &err), 0);
    int pages = count(db, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %d", pages + 2);
    ck_assert_int_eq(sqlite3_exec(wk_results_handle(db), sql, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "second", &run, &err), 0);
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        wk_request_row row = wk_results_empty_row("sim");
        row.policy = "wikv";
        row.answer = "a long answer that fills pages quickly, again and again and again and again";
        rc = wk_results_add_request(db, run, &row, NULL, &err);
    }
    ck_assert_int_eq(rc, WK_EDB);
    ck_assert_msg(strstr(err.msg, "disk full") != NULL, "%s", err.msg);
    wk_err ignored;
    wk_results_fail_run(db, run, err.msg, &ignored);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM complete_requests"), 3);
    wk_results_close(db);
    unlink(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, complete_run_is_visible);
    tcase_add_test(tc, killed_run_loses_nothing_committed);
    tcase_add_test(tc, foreign_and_corrupt_files_are_named);
    tcase_add_test(tc, full_disk_keeps_earlier_runs);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
