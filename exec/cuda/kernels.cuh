/* Internal interface between the CUDA engine (engine_cuda.cu) and its kernels (kernels_*.cu): one
 * launcher per kernel, each taking device pointers and the stream. Not part of wikv's C interface
 * (that is engine_cuda.h). Every launcher only enqueues work; the caller checks cudaGetLastError. */
#ifndef WIKV_EXEC_CUDA_KERNELS_CUH
#define WIKV_EXEC_CUDA_KERNELS_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* kernel<<<grid, block, smem, s>>>(args...) with programmatic stream serialisation: the kernel may be
 * scheduled while the previous one in the stream drains, so it must call
 * cudaGridDependencySynchronize() before it touches anything an earlier kernel writes or reads (it
 * may read what no kernel of the step writes, such as weights, before). A kernel that calls
 * cudaTriggerProgrammaticLaunchCompletion() lets the next such launch start early. */
template <typename... K, typename... A>
static inline void wk_cu_launch_pdl(void (*kernel)(K...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, kernel, args...);
}

/* x (n, dim) fp32 = embed[tokens[t]] (embed (vocab, dim) fp16). */
void wk_cu_embed(float *x, const __half *embed, const int32_t *tokens, int n, int dim, cudaStream_t s);

/* out (n, dim) fp16 = x / rms(x) * w, x (n, dim) fp32, w (dim) fp32. */
void wk_cu_rmsnorm(__half *out, const float *x, const float *w, int n, int dim, float eps, cudaStream_t s);

/* One layer's q/k/v post-processing for a chunk of n tokens at positions pos..pos+n-1:
 * qkv (n, qd + 2 kd) fp16 from the fused projection -> +bias, per-head RMSNorm (Qwen3), RoPE;
 * q goes to q_out (n, qd); k, v go to the cache slots [kv_head][pos + t][hd] and are marked present. */
typedef struct wk_cu_rope_args {
    const __half *qkv;     /* (n, qd + 2 kd) */
    const float *bias;     /* (qd + 2 kd) or NULL */
    const float *q_norm;   /* (hd) or NULL */
    const float *k_norm;   /* (hd) or NULL */
    const float *inv_freq; /* (hd / 2) */
    __half *q_out;         /* (n, qd) */
    __half *k_cache;       /* this layer: [n_kv][cap][hd] */
    __half *v_cache;       /* this layer: [n_kv][cap][hd] */
    uint8_t *present;      /* this layer: [n_kv][cap] */
    int n, pos, n_heads, n_kv, hd, cap;
    float eps;
} wk_cu_rope_args;
void wk_cu_rope_store(const wk_cu_rope_args *a, cudaStream_t s);

/* h (n, hidden) fp16 = silu(gu[:, :hidden]) * gu[:, hidden:], gu (n, 2 hidden) fp16. */
void wk_cu_swiglu(__half *h, const __half *gu, int n, int hidden, cudaStream_t s);

/* Attention of n_rows query rows (row r at position pos0 + r) over one layer's cache. Row r sees slots
 * [max(0, p - window + 1), p] (window 0 = all); absent slots are skipped (masked) or read as K = V = 0
 * (zero_mode). Query head h uses KV head h / (n_heads / n_kv). */
typedef struct wk_cu_attn_args {
    const __half *q;         /* (n_rows, n_heads * hd), RoPE applied */
    __half *out;             /* (n_rows, n_heads * hd) */
    const __half *k, *v;     /* this layer: [n_kv][cap][hd] */
    const uint8_t *present;  /* this layer: [n_kv][cap] */
    int n_rows, pos0, n_heads, n_kv, hd, cap, window, zero_mode;
    int simt_decode;         /* 1: split decode on the CUDA cores even where the tensor-core kernel applies */
    int prefill_kernel;      /* WK_CU_PREFILL_*: which flash prefill kernel runs */
} wk_cu_attn_args;

/* Flash-style prefill (tensor cores, online softmax, 64-key tiles); hd must be 64 or 128. Kernels:
 * MMA: mma.sync, 64 rows per block; PIPE: Hopper wgmma, 128 rows per block (two warpgroups), each
 * warpgroup's softmax overlapping its tensor-core work, 3 K/V stages; PAIRS: PIPE with the two
 * warpgroups on two query heads of one KV head (64 positions; PIPE where the GQA group size is odd);
 * AUTO (the default): PAIRS at head_dim 128, MMA at 64, the faster of each on an H100.
 * wk_cu_prefill_kernel_named maps the names "mma", "pipe", "pairs", "auto" (NULL: AUTO) to these, -1
 * for others. */
enum { WK_CU_PREFILL_MMA, WK_CU_PREFILL_PIPE, WK_CU_PREFILL_PAIRS, WK_CU_PREFILL_AUTO };
int wk_cu_prefill_kernel_named(const char *name);
int wk_cu_attn_prefill_supported(int hd);
void wk_cu_attn_prefill(const wk_cu_attn_args *a, cudaStream_t s);

/* Split-sequence decode: partial (m, l, acc) per (row, head, split), then a reduction kernel. Any
 * n_rows; hd % 8 == 0 and hd <= 256. part must hold wk_cu_attn_decode_part_floats() floats. One row
 * with hd 64 or 128 (a decode step) runs on the tensor cores (unless simt_decode), the rest on the
 * CUDA cores; wk_cu_attn_decode_splits gives the split count for whichever applies. */
int wk_cu_attn_decode_splits(const wk_cu_attn_args *a, int n_sm);
size_t wk_cu_attn_decode_part_floats(const wk_cu_attn_args *a, int n_splits);
void wk_cu_attn_decode(const wk_cu_attn_args *a, float *part, int n_splits, cudaStream_t s);

/* Attention export: for rows [row0, n_rows) of the chunk, adds the softmax weight of every visible
 * slot, summed over the query heads of each group, into attn[kv_head][stride] (fp32). */
void wk_cu_attn_export(const wk_cu_attn_args *a, int row0, float *attn, int stride, cudaStream_t s);

/* Decode-step matrix-vector product y = W xn, W (rows, in) fp16 row-major. The input is RMSNorm(x)
 * * norm_w of the fp32 residual x when x != NULL, else xh (fp16). Modes: F16 / F32 write y (out), F32
 * also the argmax when amax != NULL (the LM head of a greedy step: no separate argmax pass);
 * ADD_F32 adds into y (the residual); SWIGLU reads rows r and r + out (gate, up) and writes
 * silu(gate) * up as fp16 (out); ROPE: see below. Needs in % 8 == 0 and in <= 24576
 * (wk_cu_gemv_supported). */
enum { WK_GEMV_F16 = 0, WK_GEMV_F32 = 1, WK_GEMV_ADD_F32 = 2, WK_GEMV_SWIGLU = 3, WK_GEMV_ROPE = 4 };
typedef struct wk_cu_gemv_args {
    const __half *w;      /* (out or 2 out, in) */
    const float *x;       /* (in) fp32 residual to normalise, or NULL */
    const float *norm_w;  /* (in) RMSNorm weight when x != NULL */
    const __half *xh;     /* (in) fp16 input when x == NULL */
    void *y;              /* (out) */
    int in, out, mode;
    float eps;
    int max_blocks;       /* grid cap (e.g. 4 per SM); 0 = one block per 8 rows */
    int early;            /* 1: launched with wk_cu_launch_pdl, the first weights requested before the wait */
    unsigned long long *amax; /* F32 mode, or NULL: atomicMax of the argmax key of every row (set it to 0 first) */
    /* ROPE mode (W = the fused QKV rows, out = (n_heads + 2 n_kv) hd, y unused): q rotated into q_out
     * (n_heads * hd), k rotated and v into the cache slot pos ([n_kv][cap][hd]), marked present. */
    const float *inv_freq; /* (hd / 2) */
    __half *q_out, *k_cache, *v_cache;
    uint8_t *present;      /* [n_kv][cap] */
    int pos, n_heads, n_kv, hd, cap;
} wk_cu_gemv_args;
int wk_cu_gemv_supported(int in);
/* The row (lowest on ties, as wk_sampler_argmax) of the largest key that wk_cu_gemv left in *amax. */
int32_t wk_cu_argmax_key_row(unsigned long long key);
void wk_cu_gemv(const wk_cu_gemv_args *a, cudaStream_t s);

/* out[r] = index of the largest of logits[r][0..vocab) (lowest index on ties), for r < rows. */
void wk_cu_argmax(int32_t *out, const float *logits, int rows, int vocab, cudaStream_t s);

/* Deterministic synthetic weights: dst[i] = offset + scale * u(key, i), u uniform in [-1, 1) from a
 * counter-based hash (lowbias32), identical to tools/bench_transformers.py's. */
uint32_t wk_cu_hash32(uint32_t x);
void wk_cu_synth_f16(__half *dst, size_t n, uint32_t key, float scale, float offset, cudaStream_t s);
void wk_cu_synth_f32(float *dst, size_t n, uint32_t key, float scale, float offset, cudaStream_t s);
/* dst (n) fp16 = src (n) fp32 (device to device). */
void wk_cu_f32_to_f16(__half *dst, const float *src, size_t n, cudaStream_t s);

#endif
