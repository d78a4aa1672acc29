/* `wikv engine info|generate|attn`: look at a Hugging Face model directory through the CPU reference
 * engine: its config and tensors, a greedy/sampled continuation, and the attention-importance export
 * (the input of the WiKV semantic coder). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "exec/engine.h"
#include "exec/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(const wk_err *err) {
    fprintf(stderr, "wikv engine: %s\n", err->msg);
    return wk_err_exit_status(err);
}

static const char *ARCH_NAMES[] = {"llama", "mistral", "qwen2", "qwen3"};

static int engine_info(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout, "usage: wikv engine info DIR\nPrints the config, tensor dtypes and tokenizer of a HF model directory.\n");
        return argc < 2 ? 2 : 0;
    }
    const char *dir = argv[1];
    wk_model_config c;
    wk_safetensors st;
    wk_tokenizer *tok = NULL;
    wk_err err = {0};
    if (wk_model_config_load_dir(dir, &c, &err)) return fail(&err);
    if (wk_st_open_dir(dir, &st, &err)) return fail(&err);
    printf("architecture     %s (%s)\n", c.arch_name, ARCH_NAMES[c.arch]);
    printf("layers           %d\nhidden           %d\nintermediate     %d\n", c.n_layers, c.dim, c.hidden_dim);
    printf("heads            %d (kv %d, head_dim %d)\nvocab            %d\n", c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size);
    printf("rope             theta %g, scaling %s (factor %g)\n", c.rope_theta,
           c.rope_type == WK_ROPE_LLAMA3 ? "llama3" : c.rope_type == WK_ROPE_LINEAR ? "linear" : "none", c.rope_factor);
    printf("qkv bias / qk norm / tied   %d / %d / %d\nsliding window   %d\n", c.qkv_bias, c.qk_norm, c.tie_embeddings,
           c.sliding_window);
    printf("parameters       %lld\n", wk_model_config_n_params(&c));
    size_t counts[16] = {0}, bytes = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        counts[st.tensors[i].dtype]++;
        bytes += st.tensors[i].nbytes;
    }
    printf("tensors          %zu in %d file(s), %.2f MB:", st.n_tensors, st.n_files, bytes / 1e6);
    for (int d = 0; d < 16; d++)
        if (counts[d]) printf(" %s x%zu", wk_st_dtype_name((wk_st_dtype)d), counts[d]);
    printf("\nKV per token     %lld bytes at fp16\n", 2LL * c.n_layers * c.n_kv_heads * c.head_dim * 2);
    wk_st_close(&st);
    if (wk_tokenizer_load_dir(dir, &tok, &err) == 0) {
        static const char *pk[] = {"none (sentencepiece-style)", "gpt2", "llama3", "qwen2"};
        printf("tokenizer        %d pieces, pre-tokenizer %s, bos %d\n", wk_tokenizer_vocab_size(tok), pk[wk_tokenizer_pretok(tok)],
               wk_tokenizer_bos(tok));
        wk_tokenizer_free(tok);
    } else
        printf("tokenizer        unavailable: %s\n", err.msg);
    return 0;
}

typedef struct {
    const char *dir, *prompt, *prompt_file;
    int n, rows, top, no_bos;
    float temperature;
    unsigned long long seed;
} engine_args;

static int parse_args(int argc, char **argv, engine_args *a, const char *usage) {
    static const struct option opts[] = {{"prompt", required_argument, 0, 'p'}, {"prompt-file", required_argument, 0, 'f'},
                                         {"tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 't'},
                                         {"seed", required_argument, 0, 's'},   {"rows", required_argument, 0, 'r'},
                                         {"top", required_argument, 0, 'k'},    {"no-bos", no_argument, 0, 'B'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "p:f:n:t:s:r:k:Bh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': a->prompt = optarg; break;
        case 'f': a->prompt_file = optarg; break;
        case 'n': a->n = atoi(optarg); break;
        case 't': a->temperature = (float)atof(optarg); break;
        case 's': a->seed = strtoull(optarg, NULL, 10); break;
        case 'r': a->rows = atoi(optarg); break;
        case 'k': a->top = atoi(optarg); break;
        case 'B': a->no_bos = 1; break;
        case 'h': printf("%s", usage); return 1;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    if (optind + 1 != argc || (!a->prompt && !a->prompt_file) || a->n < 0 || a->rows < 1 || a->top < 1 ||
        !(a->temperature >= 0)) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    a->dir = argv[optind];
    return 0;
}

static char *read_text(const char *path, size_t *len, wk_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        wk_err_set(err, WK_ENOTFOUND, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (!buf) wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    *len = n;
    return buf;
}

/* Loads tokenizer and engine (capacity for prompt + n) and encodes the prompt. */
static int setup(const engine_args *a, wk_tokenizer **tok, wk_engine **e, int32_t **ids, size_t *n, wk_err *err) {
    size_t len = 0;
    char *file_text = NULL;
    const char *text = a->prompt;
    if (a->prompt_file) {
        if (!(file_text = read_text(a->prompt_file, &len, err))) return err->code;
        text = file_text;
    } else
        len = strlen(text);
    int rc = wk_tokenizer_load_dir(a->dir, tok, err);
    if (!rc) rc = wk_tokenizer_encode(*tok, text, len, a->no_bos ? 0 : WK_TOK_ADD_SPECIAL, ids, n, err);
    free(file_text);
    if (!rc && *n == 0) rc = wk_err_set(err, WK_EINVAL, "prompt encodes to no tokens");
    wk_engine_opts o = {.kv_capacity = (int)*n + a->n + 1};
    if (!rc) rc = wk_engine_cpu_open(a->dir, &o, e, err);
    return rc;
}

static int engine_generate(int argc, char **argv) {
    const char *usage = "usage: wikv engine generate DIR (--prompt TEXT | --prompt-file F) [-n 20] [--temperature 0]\n"
                        "                            [--seed 1] [--no-bos]\n"
                        "Runs the CPU reference engine: prints the continuation; timing on stderr.\n";
    engine_args a = {.n = 20, .rows = 100, .top = 20, .seed = 1};
    int rc = parse_args(argc, argv, &a, usage);
    if (rc) return rc == 1 ? 0 : rc;
    wk_tokenizer *tok = NULL;
    wk_engine *e = NULL;
    int32_t *ids = NULL, *out = NULL;
    size_t n = 0;
    wk_err err = {0};
    wk_sampler s = {0};
    int n_out = 0;
    if (setup(&a, &tok, &e, &ids, &n, &err) == 0 && wk_sampler_init(&s, e->cfg.vocab_size, a.temperature, 0, a.seed) == 0 &&
        (out = malloc(((size_t)a.n + 1) * sizeof *out))) {
        double t0 = now_s();
        rc = wk_engine_generate(e, ids, (int)n, a.n, &s, e->cfg.eos_token_ids, e->cfg.n_eos, out, &n_out, &err);
        double dt = now_s() - t0;
        char *text;
        size_t len;
        if (!rc && !(rc = wk_tokenizer_decode(tok, out, (size_t)n_out, WK_TOK_SKIP_SPECIAL, &text, &len, &err))) {
            printf("%s\n", text);
            free(text);
            fprintf(stderr, "prompt %zu tokens, generated %d tokens in %.3f s\n", n, n_out, dt);
        }
    } else if (!err.code)
        wk_err_set(&err, WK_ENOMEM, "out of memory");
    if (err.code) rc = fail(&err);
    wk_sampler_free(&s);
    free(out);
    free(ids);
    wk_engine_free(e);
    wk_tokenizer_free(tok);
    return rc;
}

typedef struct {
    int token;
    float score;
} scored;

static int cmp_scored(const void *x, const void *y) {
    const scored *a = x, *b = y;
    return a->score < b->score ? 1 : a->score > b->score ? -1 : a->token - b->token;
}

static void print_top(const wk_tokenizer *tok, const int32_t *ids, const float *imp, int n, int n_lh, int top) {
    scored *sc = malloc((size_t)n * sizeof *sc);
    if (!sc) return;
    for (int t = 0; t < n; t++) {
        sc[t] = (scored){t, 0};
        for (int lh = 0; lh < n_lh; lh++) sc[t].score += imp[(size_t)lh * n + t];
    }
    qsort(sc, (size_t)n, sizeof *sc, cmp_scored);
    printf("%6s %8s %10s  %s\n", "rank", "position", "importance", "token");
    for (int i = 0; i < top && i < n; i++) {
        char *piece = NULL;
        size_t len;
        wk_err err;
        int32_t id = ids[sc[i].token];
        if (wk_tokenizer_decode(tok, &id, 1, 0, &piece, &len, &err)) piece = NULL;
        for (size_t k = 0; piece && k < len; k++)
            if (piece[k] == '\n' || piece[k] == '\t') piece[k] = ' ';
        printf("%6d %8d %10.4f  '%s'\n", i + 1, sc[i].token, sc[i].score, piece ? piece : "?");
        free(piece);
    }
    free(sc);
}

static int engine_attn(int argc, char **argv) {
    const char *usage = "usage: wikv engine attn DIR (--prompt-file F | --prompt TEXT) [--rows 100] [--top 20] [--no-bos]\n"
                        "Prefills the prompt and prints the tokens with the largest attention importance from the\n"
                        "last ROWS query rows (summed over layers and KV heads; per (layer, kv_head) it is the mean\n"
                        "over rows of the softmax weight summed over the group's query heads).\n";
    engine_args a = {.n = 0, .rows = 100, .top = 20, .seed = 1};
    int rc = parse_args(argc, argv, &a, usage);
    if (rc) return rc == 1 ? 0 : rc;
    wk_tokenizer *tok = NULL;
    wk_engine *e = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    wk_err err = {0};
    float *imp = NULL;
    if (setup(&a, &tok, &e, &ids, &n, &err) == 0) {
        int rows = a.rows < (int)n ? a.rows : (int)n, n_lh = e->cfg.n_layers * e->cfg.n_kv_heads;
        imp = malloc((size_t)n_lh * n * sizeof *imp);
        double t0 = now_s();
        if (!imp) wk_err_set(&err, WK_ENOMEM, "out of memory");
        else if (wk_engine_attention(e, ids, (int)n, rows, imp, &err) == 0) {
            fprintf(stderr, "prompt %zu tokens, %d query rows, %.3f s\n", n, rows, now_s() - t0);
            print_top(tok, ids, imp, (int)n, n_lh, a.top);
        }
    }
    rc = err.code ? fail(&err) : 0;
    free(imp);
    free(ids);
    wk_engine_free(e);
    wk_tokenizer_free(tok);
    return rc;
}

int wk_cmd_engine(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "info") == 0) return engine_info(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "generate") == 0) return engine_generate(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "attn") == 0) return engine_attn(argc - 1, argv + 1);
    int help = argc >= 2 && strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr, "usage: wikv engine info DIR\n"
                                    "       wikv engine generate DIR --prompt TEXT [-n 20] [--temperature T] [--seed S]\n"
                                    "       wikv engine attn DIR --prompt-file F [--rows 100] [--top 20]\n");
    return help ? 0 : 2;
}
