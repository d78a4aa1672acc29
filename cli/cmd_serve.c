/* `wikv serve`: the edge server of the real execution (exec/stream.h): streams encoded KV units in
 * the order the sender policy picks, paced by a bandwidth trace, one thread per connection. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "exec/stream.h"
#include "net/paced.h"

static const char *usage =
    "usage: wikv serve --port P --trace FILE [options]\n"
    "Edge server: for each connection, builds the requested policy's plan, encodes the units from the\n"
    "context's real KV (a `wikv kvgen` file, else a prefill) and streams them paced by the trace.\n"
    "  --port P             TCP port (0: any free port; the bound port is printed on stdout)\n"
    "  --host H             address to listen on (default 127.0.0.1)\n"
    "  --trace FILE         bandwidth trace the sends are paced by\n"
    "  --model DIR          HF model directory (default models/fixtures/tiny-llama-tasks), or synthetic:NAME\n"
    "                       (deterministic random weights of models/specs/NAME.json; a 7-8B spec needs --kv-dir)\n"
    "  --tokenizer DIR      tokenizer.json directory (default: the model's; for synthetic models the fixture's)\n"
    "  --kv-dir DIR         KV files written by `wikv kvgen` (default: prefill each context once, CPU engine)\n"
    "  --kv-cache N         contexts kept in memory across requests (default 4; least recently used go)\n"
    "  --kv-preload         load every file of --kv-dir before listening (the port line follows it)\n"
    "  --encode-threads N   encoder threads per request, encoding units ahead of the link (default 4;\n"
    "                       0: none, the sender encodes each unit when it picks it)\n"
    "  --encode-ahead N     units encoded ahead of the sender, at most (default 8; also at most 256 MB)\n"
    "  --unit-store MB      encoded units kept per context, so each unit is encoded once (default 1024;\n"
    "                       0: none kept)\n"
    "  --pre-encode SPECS   with --kv-preload: encode every unit (all levels) of these policies' plans for\n"
    "                       each preloaded context before listening, ';'-separated (e.g. \"kivi2;cachegen\"),\n"
    "                       as a server that stores its KV encoded ahead of time (on all cores)\n"
    "  --device NAME        device profile the plans are made for (default rtx5080-laptop)\n"
    "  --delay-ms MS        one-way delay (default 10)\n"
    "  --max-connections N  exit after serving N connections (default 0: forever)\n"
    "  --max-active N       connections served at once (default 128); one more gets an ERROR frame\n"
    "                       \"server busy\" and is closed, and the client records it as failed\n"
    "  --send-timeout S     drop a connection whose client sends no request, takes no byte or does not\n"
    "                       close after the end for S seconds (default 30); a slow reader that keeps\n"
    "                       reading is served, one that stopped is dropped, the others are not held up\n"
    "  --shared-link        every connection is one flow of ONE link over the trace (devices behind one\n"
    "                       access point): the trace's capacity is shared fairly among the connections\n"
    "                       with bytes in flight (net/shared_link.h, as `wikv sim --devices-per-link`);\n"
    "                       without it each connection is paced by the whole trace on its own\n"
    "  --backend cpu        engine for the server's own prefills (cpu only: GPU-sized models stream\n"
    "                       `wikv kvgen --backend cuda` files, see exec/stream.h)\n"
    "  --quiet              no per-connection lines on stderr\n";

typedef struct ready_line {
    const char *host;
    unsigned port;
} ready_line;

/* The port line scripts wait for: printed once the server takes requests (after a preload). */
static void announce(void *arg) {
    const ready_line *r = arg;
    printf("listening on %s:%u\n", r->host, r->port);
    fflush(stdout);
}

int wk_cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"port", required_argument, 0, 'p'},    {"host", required_argument, 0, 'H'},
        {"trace", required_argument, 0, 't'},   {"model", required_argument, 0, 'm'},
        {"kv-dir", required_argument, 0, 'k'},  {"device", required_argument, 0, 'd'},
        {"delay-ms", required_argument, 0, 'D'}, {"max-connections", required_argument, 0, 'n'},
        {"backend", required_argument, 0, 'b'}, {"quiet", no_argument, 0, 'q'},
        {"max-active", required_argument, 0, 'a'}, {"send-timeout", required_argument, 0, 'T'},
        {"shared-link", no_argument, 0, 'L'},   {"tokenizer", required_argument, 0, 'K'},
        {"kv-cache", required_argument, 0, 'C'}, {"kv-preload", no_argument, 0, 'P'},
        {"encode-threads", required_argument, 0, 'E'}, {"encode-ahead", required_argument, 0, 'A'},
        {"unit-store", required_argument, 0, 'U'}, {"pre-encode", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    char model_dir[4096];
    wk_fixture_model_dir(model_dir, sizeof model_dir);
    wk_stream_server_opts o = {.model_dir = model_dir, .delay_s = 0.010};
    const char *trace_path = NULL, *host = "127.0.0.1";
    long port = -1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'H': host = optarg; break;
        case 't': trace_path = optarg; break;
        case 'm': o.model_dir = optarg; break;
        case 'k': o.kv_dir = optarg; break;
        case 'd': o.device = optarg; break;
        case 'D': o.delay_s = atof(optarg) / 1000.0; break;
        case 'n': o.max_connections = atoi(optarg); break;
        case 'q': o.quiet = 1; break;
        case 'a': o.max_active = atoi(optarg); if (o.max_active < 1) o.max_active = -1; break;
        case 'T': o.send_timeout_s = atof(optarg); if (!(o.send_timeout_s > 0)) o.send_timeout_s = -1; break;
        case 'L': o.shared_link = 1; break;
        case 'K': o.tokenizer_dir = optarg; break;
        case 'C': o.kv_cache = atoi(optarg); if (o.kv_cache < 1) o.kv_cache = -1; break;
        case 'P': o.kv_preload = 1; break;
        case 'E': o.encode_threads = atoi(optarg); if (o.encode_threads == 0) o.encode_threads = -1; else if (o.encode_threads < 0) o.encode_threads = -2; break;
        case 'U': o.unit_store_mb = atoi(optarg); if (o.unit_store_mb <= 0) o.unit_store_mb = strcmp(optarg, "0") ? -2 : -1; break;
        case 'R': o.pre_encode = optarg; break;
        case 'A': o.encode_ahead = atoi(optarg); if (o.encode_ahead < 1) o.encode_ahead = -1; break;
        case 'b':
            if (strcmp(optarg, "cpu") != 0) {
                fprintf(stderr, "wikv serve: --backend %s: the server prefills with the cpu engine only (GPU-sized models: "
                                "`wikv kvgen --backend cuda` files and --kv-dir)\n", optarg);
                return 2;
            }
            break;
        case 'h': printf("%s", usage); return 0;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    if (optind != argc || port < 0 || port > 65535 || !trace_path || o.delay_s < 0 || o.max_connections < 0 ||
        o.max_active < 0 || o.send_timeout_s < 0 || o.kv_cache < 0 || o.encode_threads < -1 || o.encode_ahead < 0 ||
        o.unit_store_mb < -1) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (o.pre_encode && !(o.kv_preload && o.kv_dir)) {
        fprintf(stderr, "wikv serve: --pre-encode encodes the preloaded contexts: it needs --kv-dir and --kv-preload\n");
        return 2;
    }
    wk_err err = {0};
    wk_trace trace;
    if (wk_trace_load(trace_path, WK_FMT_AUTO, &trace, &err)) {
        fprintf(stderr, "wikv serve: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    o.trace = &trace;
    int fd;
    uint16_t bound;
    int rc = wk_paced_listen(host, (uint16_t)port, &fd, &bound, &err);
    if (!rc) {
        ready_line line = {host, bound};
        o.ready = announce;
        o.ready_arg = &line;
        rc = wk_stream_serve(fd, &o, &err);
        close(fd);
    }
    wk_trace_free(&trace);
    if (rc) {
        fprintf(stderr, "wikv serve: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    return 0;
}
