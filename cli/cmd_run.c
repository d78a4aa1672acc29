/* `wikv run`: the device client of the real execution (exec/stream.h): sends requests to a
 * `wikv serve`, runs the policy's receiver half on the engine, records every request (kind exec). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/results.h"
#include "exec/stream.h"
#include "sim/choose.h"

static const char *usage =
    "usage: wikv run --server HOST:PORT --policy P --task T --context N [options]\n"
    "Device client: asks the server for N-token task contexts under policy P, decodes the arriving\n"
    "units into the engine's KV cache as the policy's receiver half says, generates the answer and\n"
    "records TTFT, time per output token, bytes, KV fraction at the first token, answer and F1.\n"
    "  --policy P           prefill, full, kivi2, kivi4, wikv (with :key=value,... parameters)\n"
    "  --task T             passkey|multikey|topic|vartrack\n"
    "  --context N          context tokens (approximate, exec/tasks.h)\n"
    "  --n K                requests, seeds S..S+K-1 (default 1)\n"
    "  --seed S             first seed (default 1)\n"
    "  --out K              tokens to generate (default 12)\n"
    "  --model DIR          HF model directory (default models/fixtures/tiny-llama-tasks), or synthetic:NAME:\n"
    "                       deterministic random weights of models/specs/NAME.json (timing runs: rows get\n"
    "                       model synthetic:NAME and a NULL F1; cpu for small specs such as tiny)\n"
    "  --tokenizer DIR      tokenizer.json directory (default: the model's; for synthetic models the fixture's)\n"
    "  --trace FILE         the trace the server paces by (only names the rows)\n"
    "  --cell LABEL         label of the rows' cell column (groups a grid's rows, e.g. ctx=8192)\n"
    "  --timeout S          fail a request when nothing arrives for S seconds (default 30)\n"
    "  --db FILE            results database (default results.db)\n"
    "  --confidence FILE    confidence boundary of paced decoding (wikv); with --fit-confidence it is\n"
    "                       fitted first on full-KV decodes of training-seed items and written there\n"
    "  --fit-confidence     fit the boundary (8 items of the task at the context, k = 3 std)\n"
    "  --policy-config FILE run the policy chosen by `wikv choose` (choice.json) instead of --policy;\n"
    "                       its context is the default of --context\n"
    "  --backend cpu|cuda   engine (default cpu; cuda when this build has it)\n";

typedef struct run_args {
    const char *server, *policy, *task, *model, *tokenizer, *trace, *db, *confidence, *backend, *policy_config, *cell;
    char chosen[WK_CHOOSE_SPEC_MAX]; /* the policy of --policy-config */
    int fit;
    int context, n, out;
    unsigned long long seed;
    double timeout_s;
} run_args;

/* --policy-config: the chosen policy, and its context unless --context was given. */
static int apply_choice(run_args *a) {
    if (a->policy) {
        fprintf(stderr, "wikv run: --policy and --policy-config together\n");
        return 2;
    }
    wk_choice ch;
    wk_err err = {0};
    if (wk_choice_read(a->policy_config, &ch, &err)) {
        fprintf(stderr, "wikv run: %s\n", err.msg);
        return 2;
    }
    snprintf(a->chosen, sizeof a->chosen, "%s", ch.spec);
    a->policy = a->chosen;
    if (a->context == 0) a->context = ch.context_tokens;
    return 0;
}

static int parse(int argc, char **argv, run_args *a) {
    static const struct option opts[] = {
        {"server", required_argument, 0, 'S'},  {"policy", required_argument, 0, 'p'},
        {"task", required_argument, 0, 't'},    {"context", required_argument, 0, 'c'},
        {"n", required_argument, 0, 'n'},       {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},     {"model", required_argument, 0, 'm'},
        {"trace", required_argument, 0, 'T'},   {"timeout", required_argument, 0, 'w'},
        {"db", required_argument, 0, 'd'},      {"backend", required_argument, 0, 'b'},
        {"confidence", required_argument, 0, 'C'}, {"fit-confidence", no_argument, 0, 'F'},
        {"policy-config", required_argument, 0, 'P'}, {"tokenizer", required_argument, 0, 'K'},
        {"cell", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'S': a->server = optarg; break;
        case 'p': a->policy = optarg; break;
        case 't': a->task = optarg; break;
        case 'c': a->context = atoi(optarg); break;
        case 'n': a->n = atoi(optarg); break;
        case 's': a->seed = strtoull(optarg, NULL, 10); break;
        case 'o': a->out = atoi(optarg); break;
        case 'm': a->model = optarg; break;
        case 'K': a->tokenizer = optarg; break;
        case 'L': a->cell = optarg; break;
        case 'T': a->trace = optarg; break;
        case 'w': a->timeout_s = atof(optarg); break;
        case 'd': a->db = optarg; break;
        case 'C': a->confidence = optarg; break;
        case 'F': a->fit = 1; break;
        case 'P': a->policy_config = optarg; break;
        case 'b':
            if (!wk_engine_backend_built(optarg)) {
                fprintf(stderr, "wikv run: --backend %s: not in this build (cpu%s)\n", optarg,
                        wk_engine_backend_built("cuda") ? ", cuda" : "");
                return 2;
            }
            a->backend = optarg;
            break;
        case 'h': printf("%s", usage); return 1;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    if (a->policy_config && apply_choice(a)) return 2;
    if (optind != argc || !a->server || !a->policy || !a->task || a->context < WK_TASK_MIN_TOKENS || a->n < 1 ||
        a->out < 1 || a->out > 4096 || !(a->timeout_s > 0) || strchr(a->server, ':') == NULL ||
        (a->fit && !a->confidence)) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    return 0;
}

static void fill_row(const run_args *a, const wk_stream_client *c, const wk_policy *pol, const wk_trace *tr,
                     const wk_stream_job *job, const wk_stream_outcome *o, wk_request_row *row) {
    *row = wk_results_empty_row("exec");
    row->policy = pol->ops->name;
    row->params = pol->spec;
    row->trace = tr ? tr->name : "server";
    row->trace_mean_mbps = tr ? wk_trace_mean_mbps(tr) : wk_results_null();
    row->model = c->model_name;
    row->device = c->backend;
    row->task = a->task;
    row->context_tokens = o->context_tokens ? o->context_tokens : a->context;
    row->seed = (int64_t)job->seed;
    row->cell = a->cell;
    wk_stream_outcome_to_row(o, row);
}

static int run_all(const run_args *a, wk_stream_client *c, wk_results *db, int64_t run_id, const wk_trace *tr,
                   int *n_failed, wk_err *err) {
    char host[256];
    const char *colon = strrchr(a->server, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - a->server), a->server);
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535) return wk_err_set(err, WK_EINVAL, "--server %s: bad port", a->server);
    wk_stream_job job = {.context = a->context, .output_tokens = a->out, .seed = a->seed};
    snprintf(job.policy, sizeof job.policy, "%s", a->policy);
    int rc = wk_task_kind_parse(a->task, &job.task, err);
    wk_policy pol;
    if (!rc) rc = wk_policy_create(a->policy, &pol, err);
    if (rc) return rc;
    double f1_sum = 0, ttft_sum = 0;
    int ok = 0;
    for (int i = 0; i < a->n && !rc; i++, job.seed++) {
        wk_stream_outcome o;
        rc = wk_stream_client_request(c, host, (uint16_t)port, &job, &o, err);
        if (rc) break;
        wk_request_row row;
        fill_row(a, c, &pol, tr, &job, &o, &row);
        rc = wk_results_add_request(db, run_id, &row, NULL, err);
        if (o.ok) {
            ok++;
            f1_sum += c->synthetic ? 0 : o.f1;
            ttft_sum += o.ttft_s;
            char f1[32] = "-"; /* synthetic weights: not measured */
            if (!c->synthetic) snprintf(f1, sizeof f1, "%.2f", o.f1);
            printf("%s %s seed %llu: ttft %.3f s, tpot %.4f s, %lld bytes, kv %.2f, f1 %s, answer \"%s\"\n",
                   pol.spec, a->task, (unsigned long long)job.seed, o.ttft_s, o.tpot_s, (long long)o.bytes_at_first,
                   o.kv_fraction_at_first, f1, o.answer);
        } else {
            (*n_failed)++;
            printf("%s %s seed %llu: FAILED: %s\n", pol.spec, a->task, (unsigned long long)job.seed, o.fail_reason);
        }
        fflush(stdout);
    }
    if (ok && c->synthetic)
        printf("%s %s: %d ok, %d failed, mean ttft %.3f s, f1 not measured (synthetic weights)\n", pol.ops->name, a->task,
               ok, *n_failed, ttft_sum / ok);
    else if (ok)
        printf("%s %s: %d ok, %d failed, mean ttft %.3f s, mean f1 %.3f\n", pol.ops->name, a->task, ok, *n_failed,
               ttft_sum / ok, f1_sum / ok);
    wk_policy_free(&pol);
    return rc;
}

/* KV slots the requests need: the longest prompt of the seeds asked for (and of the confidence fit's
 * training items) plus the tokens generated, so a 32K context gets a 32K cache and no more. */
static int needed_capacity(const run_args *a, int *capacity, wk_err *err) {
    char dir[4096];
    wk_stream_tokenizer_dir(a->model, a->tokenizer, dir, sizeof dir);
    wk_tokenizer *tok = NULL;
    wk_stream_job job = {.context = a->context, .output_tokens = a->out};
    int rc = wk_tokenizer_load_dir(dir, &tok, err);
    if (!rc) rc = wk_task_kind_parse(a->task, &job.task, err);
    int longest = 0, items = a->n + (a->fit ? 8 : 0);
    for (int i = 0; i < items && !rc; i++) {
        job.seed = i < a->n ? a->seed + (uint64_t)i : WK_TASK_TRAIN_SEED_MIN + (uint64_t)(i - a->n);
        wk_stream_prompt p;
        rc = wk_stream_prompt_make(tok, &job, &p, err);
        if (!rc && p.n > longest) longest = p.n;
        if (!rc) wk_stream_prompt_free(&p);
    }
    wk_tokenizer_free(tok);
    *capacity = rc ? 0 : longest + a->out + 1;
    return rc;
}

int wk_cmd_run(int argc, char **argv) {
    char model_dir[4096];
    wk_fixture_model_dir(model_dir, sizeof model_dir);
    run_args a = {.model = model_dir, .db = "results.db", .n = 1, .out = 12, .seed = 1, .timeout_s = 30.0, .backend = "cpu"};
    int rc = parse(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    wk_err err = {0};
    wk_trace trace, *tr = NULL;
    wk_stream_client c;
    wk_results *db = NULL;
    int64_t run_id = 0;
    int n_failed = 0, begun = 0;
    memset(&c, 0, sizeof c);
    if (a.trace) {
        rc = wk_trace_load(a.trace, WK_FMT_AUTO, &trace, &err);
        if (!rc) tr = &trace;
    }
    int capacity = 0;
    if (!rc) rc = needed_capacity(&a, &capacity, &err);
    if (!rc) rc = wk_stream_client_open_opts(&c, a.model, a.tokenizer, a.backend, capacity, &err);
    c.timeout_s = a.timeout_s;
    if (!rc && a.confidence && a.fit) {
        wk_task_kind kind;
        rc = wk_task_kind_parse(a.task, &kind, &err);
        if (!rc) rc = wk_stream_confidence_fit(&c, kind, a.context, 8, a.out, 3.0, &c.confidence, &err);
        if (!rc) rc = wk_stream_confidence_save(a.confidence, &c.confidence, &err);
        if (!rc)
            fprintf(stderr, "confidence: %d full-KV steps, mass50 %.4f +- %.4f, entropy100 %.4f +- %.4f -> %s\n",
                    c.confidence.steps, c.confidence.mean[0], c.confidence.std[0], c.confidence.mean[1],
                    c.confidence.std[1], a.confidence);
    } else if (!rc && a.confidence)
        rc = wk_stream_confidence_load(a.confidence, &c.confidence, &err);
    c.has_confidence = a.confidence != NULL;
    if (!rc) rc = wk_results_open(a.db, &db, &err);
    char command[2048];
    wk_cli_command_line(argc, argv, "wikv", command, sizeof command);
    /* synthetic weights: the run says so too, beside model = synthetic:NAME and F1 NULL in its rows */
    const char *note = c.synthetic ? "synthetic weights: timing only, answers not scored" : NULL;
    if (!rc) rc = wk_results_create_run(db, "exec", command, note, &run_id, &err);
    if (!rc) rc = wk_results_resume_run(db, run_id, &err);
    begun = rc == 0;
    if (!rc) rc = run_all(&a, &c, db, run_id, tr, &n_failed, &err);
    if (!rc) rc = wk_results_finish_run(db, run_id, &err);
    else if (begun) {
        wk_err e2;
        wk_results_fail_run(db, run_id, err.msg, &e2);
    }
    wk_results_close(db);
    wk_stream_client_close(&c);
    if (tr) wk_trace_free(tr);
    if (rc) {
        fprintf(stderr, "wikv run: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    return n_failed ? 1 : 0;
}
