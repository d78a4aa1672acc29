/* In-process edge server for the exec Check suites: a wk_stream_serve thread on a loopback port over a
 * constant-rate trace, with its own temporary --kv-dir (removed by test_server_join). */
#ifndef WIKV_TESTS_TEST_SERVER_H
#define WIKV_TESTS_TEST_SERVER_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/stream.h"
#include "net/paced.h"
#include "tests/check_util.h"

#define FIXTURE WIKV_SOURCE_DIR "/models/fixtures/tiny-llama-tasks"

typedef struct test_server {
    wk_stream_server_opts o;
    wk_trace trace;
    int fd;
    uint16_t port;
    pthread_t thread;
    int rc;
    char kv_dir[64];
} test_server;

static void *test_server_main(void *arg) {
    test_server *s = arg;
    wk_err err = {0};
    s->rc = wk_stream_serve(s->fd, &s->o, &err);
    if (s->rc) fprintf(stderr, "serve: %s\n", err.msg);
    return NULL;
}

/* Listens on a free port; the fixture model, mbps constant trace, one-way delay delay_s, at most
 * `connections` connections (0: until the test stops accepting). Tests may adjust s->o before run. */
static inline void test_server_start(test_server *s, double mbps, int connections, double delay_s) {
    memset(s, 0, sizeof *s);
    wk_err err = {0};
    ck_assert_msg(wk_trace_constant("const", mbps, 10.0, &s->trace, &err) == 0, "%s", err.msg);
    snprintf(s->kv_dir, sizeof s->kv_dir, "/tmp/wikv-test-server-XXXXXX");
    ck_assert(mkdtemp(s->kv_dir) != NULL);
    s->o = (wk_stream_server_opts){.model_dir = FIXTURE, .kv_dir = s->kv_dir, .trace = &s->trace, .delay_s = delay_s,
                                   .max_connections = connections, .quiet = 1};
    ck_assert_msg(wk_paced_listen("127.0.0.1", 0, &s->fd, &s->port, &err) == 0, "%s", err.msg);
}

static inline void test_server_run(test_server *s) {
    ck_assert(pthread_create(&s->thread, NULL, test_server_main, s) == 0);
}

static inline void test_server_join(test_server *s) {
    pthread_join(s->thread, NULL);
    close(s->fd);
    wk_trace_free(&s->trace);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->kv_dir);
    ck_assert(system(cmd) == 0);
}

#endif
