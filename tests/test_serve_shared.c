/* `wikv serve --shared-link` over loopback: N = 1, 2, 4 clients at once on one constant-rate trace
 * share its capacity, so each one's transfer takes about N times as long as alone, and as long as the
 * simulator's shared link (wk_sim_shared_request, the same net/shared_link.h model) predicts for N
 * devices. Clients speak the wire protocol directly and time their stream from STREAM_INFO (the
 * server's first bytes, sent once it has the request's KV) to END, so the server's preparation of a
 * request (tokenizer, KV file: slow in sanitizer builds) is not part of the transfer. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "exec/stream.h"
#include "models/device.h"
#include "net/paced.h"
#include "sim/sim.h"
#include "tests/check_util.h"

#define FIXTURE WIKV_SOURCE_DIR "/models/fixtures/tiny-llama-tasks"
#define MBPS 2.0      /* full KV of a 256-token item (~230 KB) takes ~0.95 s alone */
#define DELAY_S 0.005
#define CONTEXT 256
#define SEED 9
/* Tolerances: the measured slowdown T_N / T_1 within 25% of N, and each mean transfer time within
 * 15% (+ 50 ms for thread start-up) of the simulator's prediction. */
#define RATIO_TOL 0.25
#define SIM_TOL 0.15
#define SIM_SLACK_S 0.05

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct client {
    uint16_t port;
    pthread_barrier_t *go;
    int ended;
    char reason[2048];
    uint64_t payload;
    double seconds; /* STREAM_INFO received -> END received */
} client;

static void *client_main(void *arg) {
    client *k = arg;
    wk_err err = {0};
    wk_stream_job job = {.task = WK_TASK_PASSKEY, .seed = SEED, .context = CONTEXT, .output_tokens = 4, .policy = "full"};
    wk_wire_msg m;
    memset(&m, 0, sizeof m);
    m.h.type = WK_FRAME_REQUEST;
    uint8_t buf[4096];
    size_t len;
    int fd = -1;
    int rc = wk_stream_job_to_wire(&job, &m.u.request, &err);
    if (!rc) rc = wk_wire_encode(&m, buf, sizeof buf, &len, &err);
    if (!rc) rc = wk_paced_connect("127.0.0.1", k->port, 10, &fd, &err);
    pthread_barrier_wait(k->go); /* every client connected: the requests leave together */
    double t0 = NAN;
    if (!rc && send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len) rc = wk_err_set(&err, WK_EIO, "send REQUEST");
    wk_paced_receiver rx;
    wk_paced_receiver_init(&rx, fd);
    while (!rc) {
        rc = wk_paced_recv(&rx, &m, 30, &err);
        if (rc) break;
        if (m.h.type == WK_FRAME_STREAM_INFO) t0 = mono_s();
        else if (m.h.type == WK_FRAME_UNIT_DATA) k->payload += m.u.unit.data_len;
        else if (m.h.type == WK_FRAME_END) {
            k->ended = 1;
            k->seconds = mono_s() - t0;
            break;
        }
        else rc = wk_err_set(&err, WK_EFORMAT, "%s", wk_wire_type_name(m.h.type));
    }
    if (rc) snprintf(k->reason, sizeof k->reason, "%s", err.msg);
    wk_paced_receiver_free(&rx);
    return NULL;
}

/* Mean transfer time of n clients at once; checks each got its whole stream. */
static double measure(uint16_t port, int n, uint64_t *payload) {
    client k[4];
    pthread_t th[4];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        k[i] = (client){.port = port, .go = &go};
        ck_assert(pthread_create(&th[i], NULL, client_main, &k[i]) == 0);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(k[i].ended, "N=%d client %d: %s", n, i, k[i].reason);
        ck_assert(k[i].payload == k[0].payload);
        sum += k[i].seconds;
    }
    pthread_barrier_destroy(&go);
    *payload = k[0].payload;
    return sum / n;
}

/* The simulator's shared link for n devices asking for the same full-KV item at once, with the
 * server's link: its one-way delay, wire bytes = frame bytes (32-byte header + 8 bytes of UNIT_DATA
 * fields per unit, no TCP/IP headers: the paced sender paces the bytes it writes). */
static double predict(const wk_trace *trace, int n, int prompt_tokens) {
    wk_err err = {0};
    wk_model_spec spec;
    wk_device dev;
    ck_assert_msg(wk_model_spec_find(FIXTURE, &spec, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_device_find("rtx5080-laptop", &dev, &err) == 0, "%s", err.msg);
    wk_sim_config cfg = {.trace = trace, .model = &spec, .device = &dev, .context_tokens = prompt_tokens,
                         .output_tokens = 4, .task = "passkey", .seed = SEED};
    cfg.link = (wk_link_params){.one_way_delay_s = DELAY_S, .frame_payload = 1448, .unit_header = WK_WIRE_HEADER_BYTES + 8};
    wk_policy pols[4];
    wk_sim_result out[4];
    for (int i = 0; i < n; i++) ck_assert(wk_policy_create("full", &pols[i], &err) == 0);
    wk_sim_shared g;
    wk_sim_shared_init(&g);
    ck_assert_msg(wk_sim_shared_request(&g, pols, (size_t)n, &cfg, 0.0, out, &err) == 0, "%s", err.msg);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        ck_assert(out[i].s.ok);
        /* the last unit's arrival: without the first token's compute, and counted from STREAM_INFO's
         * arrival (one delay after the stream starts) */
        sum += out[i].s.ttft_s - out[i].s.compute_s - DELAY_S;
        wk_policy_free(&pols[i]);
    }
    wk_sim_shared_free(&g);
    return sum / n;
}

typedef struct server {
    wk_stream_server_opts o;
    int fd, rc;
} server;

static void *serve_main(void *arg) {
    server *s = arg;
    wk_err err = {0};
    s->rc = wk_stream_serve(s->fd, &s->o, &err);
    if (s->rc) fprintf(stderr, "serve: %s\n", err.msg);
    return NULL;
}

START_TEST(clients_on_a_shared_link_split_its_capacity) {
    wk_err err = {0};
    wk_trace trace;
    ck_assert(wk_trace_constant("const", MBPS, 10.0, &trace, &err) == 0);
    char dir[64] = "/tmp/wikv-test-shared-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s kvgen --task passkey --context %d --seed %d --n 1 --out %s 2>/dev/null", WIKV_BINARY,
             CONTEXT, SEED, dir);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
    server srv = {.o = {.model_dir = FIXTURE, .kv_dir = dir, .trace = &trace, .delay_s = DELAY_S,
                        .max_connections = 1 + 1 + 2 + 4, .shared_link = 1, .quiet = 1}};
    uint16_t port;
    ck_assert(wk_paced_listen("127.0.0.1", 0, &srv.fd, &port, &err) == 0);
    pthread_t th;
    ck_assert(pthread_create(&th, NULL, serve_main, &srv) == 0);

    wk_tokenizer *tok;
    ck_assert(wk_tokenizer_load_dir(FIXTURE, &tok, &err) == 0);
    wk_stream_job job = {.task = WK_TASK_PASSKEY, .seed = SEED, .context = CONTEXT, .output_tokens = 4};
    wk_stream_prompt p;
    ck_assert(wk_stream_prompt_make(tok, &job, &p, &err) == 0);
    int prompt_tokens = p.n;
    wk_stream_prompt_free(&p);
    wk_tokenizer_free(tok);

    uint64_t payload = 0;
    measure(port, 1, &payload); /* warm-up: first-time costs (page cache, allocator) */
    const int ns[3] = {1, 2, 4};
    double t[3], sim[3];
    for (int i = 0; i < 3; i++) {
        t[i] = measure(port, ns[i], &payload);
        sim[i] = predict(&trace, ns[i], prompt_tokens);
        fprintf(stderr, "shared link %.1f Mbit/s, N=%d: transfer %.3f s per client (x%.2f of N=1), simulator %.3f s "
                        "(measured/sim %.3f), %llu payload bytes each\n", MBPS, ns[i], t[i], t[i] / t[0], sim[i],
                t[i] / sim[i], (unsigned long long)payload);
    }
    for (int i = 1; i < 3; i++)
        ck_assert_msg(fabs(t[i] / t[0] - ns[i]) <= RATIO_TOL * ns[i], "N=%d: %.3f s, %.2f times N=1 (%.3f s)", ns[i],
                      t[i], t[i] / t[0], t[0]);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(fabs(t[i] - sim[i]) <= SIM_TOL * sim[i] + SIM_SLACK_S, "N=%d: measured %.3f s, simulator %.3f s",
                      ns[i], t[i], sim[i]);
    pthread_join(th, NULL);
    ck_assert_int_eq(srv.rc, 0);
    close(srv.fd);
    wk_trace_free(&trace);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("serve_shared");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, clients_on_a_shared_link_split_its_capacity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
