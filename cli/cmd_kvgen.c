/* `wikv kvgen`: prefills task contexts with the engine and stores their KV (kv/kv_tensor.h format,
 * CRC32C-checked) where `wikv serve --kv-dir` finds it, so the server streams without prefilling. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "exec/stream.h"

static const char *usage =
    "usage: wikv kvgen --task T --context N [--seed S] [--n K] [--model DIR|synthetic:NAME] [--tokenizer DIR]\n"
    "                  [--backend cpu|cuda] --out DIR\n"
    "Prefills the prompts of K task items (seeds S..S+K-1) with the engine and writes their KV to\n"
    "DIR/TASK-CONTEXT-SEED.wkv (fp16, header with shapes, CRC32C of header and payload) and the attention\n"
    "importance (last 100 query rows of prompt + \"Repeat the above context.\") to DIR/TASK-CONTEXT-SEED.wki.\n"
    "synthetic:NAME prefills with deterministic random weights of models/specs/NAME.json (cuda for 7-8B specs)\n"
    "and tokenizes with --tokenizer (default the fixture model's).\n";

int wk_cmd_kvgen(int argc, char **argv) {
    static const struct option opts[] = {{"task", required_argument, 0, 't'},  {"context", required_argument, 0, 'c'},
                                         {"seed", required_argument, 0, 's'},  {"n", required_argument, 0, 'n'},
                                         {"model", required_argument, 0, 'm'}, {"out", required_argument, 0, 'o'},
                                         {"tokenizer", required_argument, 0, 'K'}, {"backend", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    char model_dir[4096];
    wk_fixture_model_dir(model_dir, sizeof model_dir);
    const char *model = model_dir, *out = NULL, *task = NULL, *tokenizer = NULL, *backend = "cpu";
    wk_stream_job job = {.seed = 1, .output_tokens = 1, .policy = "full"};
    int n = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': task = optarg; break;
        case 'c': job.context = atoi(optarg); break;
        case 's': job.seed = strtoull(optarg, NULL, 10); break;
        case 'n': n = atoi(optarg); break;
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'K': tokenizer = optarg; break;
        case 'b':
            if (!wk_engine_backend_built(optarg)) {
                fprintf(stderr, "wikv kvgen: --backend %s: not in this build\n", optarg);
                return 2;
            }
            backend = optarg;
            break;
        case 'h': printf("%s", usage); return 0;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    wk_err err = {0};
    if (optind != argc || !task || !out || n < 1 || job.context < WK_TASK_MIN_TOKENS) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (wk_task_kind_parse(task, &job.task, &err)) {
        fprintf(stderr, "wikv kvgen: %s\n", err.msg);
        return 2;
    }
    mkdir(out, 0777);
    wk_tokenizer *tok = NULL;
    wk_engine *e = NULL;
    char tok_dir[4096];
    wk_stream_tokenizer_dir(model, tokenizer, tok_dir, sizeof tok_dir);
    int rc = wk_tokenizer_load_dir(tok_dir, &tok, &err);
    int longest = 0; /* the engine's cache holds the longest prompt and the probe (64 slots) */
    for (int i = 0; i < n && !rc; i++) {
        wk_stream_job probe_job = job;
        probe_job.seed = job.seed + (uint64_t)i;
        wk_stream_prompt p;
        rc = wk_stream_prompt_make(tok, &probe_job, &p, &err);
        if (!rc && p.n > longest) longest = p.n;
        if (!rc) wk_stream_prompt_free(&p);
    }
    if (!rc) rc = wk_engine_open(backend, model, &(wk_engine_opts){.kv_capacity = longest + 64}, &e, &err);
    if (!rc) rc = wk_stream_check_vocab(tok, e->cfg.vocab_size, model, &err);
    for (int i = 0; i < n && !rc; i++, job.seed++) {
        wk_stream_prompt p;
        wk_kv_tensor kv = {0};
        char path[4096];
        rc = wk_stream_prompt_make(tok, &job, &p, &err);
        if (rc) break;
        if (p.n + 64 > e->kv_capacity) rc = wk_err_set(&err, WK_EINVAL, "prompt of %d tokens beyond the KV capacity", p.n);
        size_t n_imp = (size_t)e->cfg.n_layers * e->cfg.n_kv_heads * (size_t)p.n;
        float *imp = rc ? NULL : malloc(n_imp * sizeof *imp);
        if (!rc && !imp) rc = wk_err_set(&err, WK_ENOMEM, "out of memory");
        if (!rc) rc = wk_stream_prefill_kv(e, tok, p.ids, p.n, &kv, imp, &err);
        wk_stream_kv_path(out, &job, "wkv", path, sizeof path);
        if (!rc) rc = wk_kv_tensor_write(&kv, path, &err);
        wk_stream_kv_path(out, &job, "wki", path, sizeof path);
        if (!rc) rc = wk_stream_importance_write(path, imp, e->cfg.n_layers, e->cfg.n_kv_heads, p.n, &err);
        if (!rc) fprintf(stderr, "%s: %d tokens (KV and importance)\n", path, p.n);
        free(imp);
        wk_kv_tensor_free(&kv);
        wk_stream_prompt_free(&p);
    }
    wk_engine_free(e);
    wk_tokenizer_free(tok);
    if (rc) {
        fprintf(stderr, "wikv kvgen: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    return 0;
}
