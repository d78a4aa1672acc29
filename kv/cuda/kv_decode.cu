/* GPU decoders of KIVI, CacheGen and WiKV semantic bitstreams (see kv_decode_cuda.h). Every float
 * operation that the CPU decoders do is done here with the explicitly rounded intrinsics (__fmul_rn,
 * __fadd_rn, __fdiv_rn: no fused multiply-add contraction) and the fp16 conversions are ports of
 * core/half.h, so the output bits are the CPU's. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "kv/bytebuf.h"
#include "kv/cachegen.h"
#include "kv/rangecoder.h"
#include "kv/semantic.h"
}
#include "kv/cuda/kv_decode_cuda.h"

#define CK(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t ce_ = (call);                                                                                      \
        if (ce_ != cudaSuccess)                                                                                        \
            return wk_err_set(err, WK_EIO, "cuda kv decode: %s: %s (%s:%d)", #call, cudaGetErrorString(ce_),         \
                              __FILE__, __LINE__);                                                                     \
    } while (0)

#define THREADS 128
#define RC_TOP (1u << 24)

/* Per-stream error codes written by the kernels (0: ok). */
enum { SE_OK = 0, SE_SHORT, SE_FIRST, SE_GARBAGE, SE_OVERRUN, SE_TRAILING, SE_CODE };

static const char *stream_error(int e) {
    switch (e) {
    case SE_SHORT: return "range-coded stream shorter than 5 bytes";
    case SE_FIRST: return "range-coded stream: first byte is not 0";
    case SE_GARBAGE: return "range-coded stream: garbage (count outside the table)";
    case SE_OVERRUN: return "range-coded stream ends before its symbols";
    case SE_TRAILING: return "range-coded stream has trailing bytes";
    case SE_CODE: return "decoded code outside the level's range";
    default: return "unknown stream error";
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- fp16 helpers: ports of core/half.h and wk_kv_round_fp16 ---- */

__device__ __forceinline__ float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else {
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7F800000u | (mant << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    return __uint_as_float(bits);
}

__device__ __forceinline__ uint16_t f2h(float f) {
    uint32_t x = __float_as_uint(f), sign = (x >> 16) & 0x8000, absx = x & 0x7FFFFFFF;
    if (absx >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (absx > 0x7F800000 ? 0x200 : 0));
    if (absx >= 0x477FF000) return (uint16_t)(sign | 0x7C00);
    if (absx < 0x38800000) {
        if (absx < 0x33000000) return (uint16_t)sign;
        uint32_t mant = (absx & 0x7FFFFF) | 0x800000;
        int shift = 113 - (int)(absx >> 23) + 13;
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = (absx >> 13) - (112u << 10), rem = absx & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

__device__ __forceinline__ float round_fp16(float x) {
    uint32_t b = __float_as_uint(x), e = (b >> 23) & 0xFF;
    if (e < 113 || e > 141) return h2f(f2h(x));
    b = (b + 0xFFFu + ((b >> 13) & 1u)) & ~0x1FFFu;
    return __uint_as_float(b);
}

__device__ __forceinline__ uint16_t load_u16(const uint8_t *p) { return (uint16_t)(__ldg(p) | (__ldg(p + 1) << 8)); }

/* Eight fp16 values moved as one 16-byte access (rows of a head_dim that is a multiple of 8 are aligned). */
typedef union {
    uint4 v;
    uint16_t h[8];
} half8;

/* ---- range decoder (kv/rangecoder.c, one stream per thread) ---- */

typedef struct {
    const uint8_t *in;
    uint32_t len, pos, range, code;
    int overrun;
} rcd;

__device__ __forceinline__ uint32_t rcd_byte(rcd *d) {
    if (d->pos >= d->len) {
        d->overrun = 1;
        return 0;
    }
    return __ldg(d->in + d->pos++);
}

__device__ int rcd_init(rcd *d, const uint8_t *in, uint32_t len) {
    d->in = in;
    d->len = len;
    d->pos = 0;
    d->range = 0xFFFFFFFFu;
    d->code = 0;
    d->overrun = 0;
    if (len < 5) return SE_SHORT;
    if (rcd_byte(d) != 0) return SE_FIRST;
    for (int i = 0; i < 4; i++) d->code = d->code << 8 | rcd_byte(d);
    return SE_OK;
}

/* cum [nsym + 1], cum[nsym] = 2^tb (checked by the host), in shared memory as uint16 when tb < 16. Returns the
 * symbol, or -SE_* . The search finds the largest s with cum[s] <= v, as the CPU's binary search does. */
template <typename C>
__device__ __forceinline__ int rcd_get(rcd *d, const C *cum, int nsym, int top_step, int tb) {
    uint32_t r = d->range >> tb;
    uint32_t v = r ? d->code / r : 0xFFFFFFFFu;
    if (v >= (1u << tb)) return -SE_GARBAGE;
    int s = 0;
    for (int step = top_step; step; step >>= 1)
        if (s + step < nsym && (uint32_t)cum[s + step] <= v) s += step;
    uint32_t lo = cum[s], hi = s + 1 < nsym ? (uint32_t)cum[s + 1] : 1u << tb; /* 2^16 does not fit a uint16 */
    d->code -= r * lo;
    d->range = r * (hi - lo);
    while (d->range < RC_TOP) {
        d->range <<= 8;
        d->code = d->code << 8 | rcd_byte(d);
    }
    return d->overrun ? -SE_OVERRUN : s;
}

static int top_step_of(int nsym) {
    int s = 1;
    while (s * 2 < nsym) s *= 2;
    return nsym > 1 ? s : 0;
}

/* ---- KIVI ---- */

__device__ __forceinline__ uint16_t kivi_dequant(int q, uint16_t scale, uint16_t mn) {
    if (q == 0) return mn;
    return f2h(__fadd_rn(round_fp16(__fmul_rn((float)q, h2f(scale))), h2f(mn)));
}

typedef struct {
    int T, D, G, b, F, tk, tv, kgroups, vgroups;
    size_t per; /* bytes of one (layer, kv-head) */
    int H, TT, l0, h0, nh, t0; /* where block i goes: layer l0 + i / nh, head h0 + i % nh, tokens t0.. of [..][H][TT][D] */
} kivi_shape;

/* One thread per value of K or V: blocks [nl*nh], each [T][D]. */
__global__ void kivi_kernel(kivi_shape s, const uint8_t *__restrict__ in, size_t n_vals, uint16_t *k, uint16_t *v) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= 2 * n_vals) return;
    int is_v = i >= n_vals;
    size_t j = is_v ? i - n_vals : i, blk = j / ((size_t)s.T * s.D);
    int t = (int)(j / s.D % s.T), c = (int)(j % s.D);
    size_t dst = (((size_t)(s.l0 + blk / s.nh) * s.H + s.h0 + blk % s.nh) * s.TT + s.t0 + t) * s.D + c;
    const uint8_t *b = in + blk * s.per;
    const uint8_t *kcode = b, *kscale = kcode + (size_t)s.D * (s.tk / s.F) * 4,
                  *kmn = kscale + (size_t)s.D * s.kgroups * 2, *kres = kmn + (size_t)s.D * s.kgroups * 2;
    const uint8_t *vcode = kres + (size_t)(s.T - s.tk) * s.D * 2,
                  *vscale = vcode + (size_t)s.tv * (s.D / s.F) * 4, *vmn = vscale + (size_t)s.tv * s.vgroups * 2,
                  *vres = vmn + (size_t)s.tv * s.vgroups * 2;
    uint16_t out;
    if (!is_v) {
        if (t < s.tk) {
            size_t g = (size_t)c * s.kgroups + t / s.G;
            const uint8_t *w = kcode + ((size_t)c * (s.tk / s.F) + t / s.F) * 4;
            uint32_t word = (uint32_t)__ldg(w) | (uint32_t)__ldg(w + 1) << 8 | (uint32_t)__ldg(w + 2) << 16 |
                            (uint32_t)__ldg(w + 3) << 24;
            int q = (int)((word >> (s.b * (t % s.F))) & ((1u << s.b) - 1));
            out = kivi_dequant(q, load_u16(kscale + 2 * g), load_u16(kmn + 2 * g));
        } else out = load_u16(kres + ((size_t)(t - s.tk) * s.D + c) * 2);
        k[dst] = out;
    } else {
        if (t < s.tv) {
            size_t g = (size_t)t * s.vgroups + c / s.G;
            const uint8_t *w = vcode + ((size_t)t * (s.D / s.F) + c / s.F) * 4;
            uint32_t word = (uint32_t)__ldg(w) | (uint32_t)__ldg(w + 1) << 8 | (uint32_t)__ldg(w + 2) << 16 |
                            (uint32_t)__ldg(w + 3) << 24;
            int q = (int)((word >> (s.b * (c % s.F))) & ((1u << s.b) - 1));
            out = kivi_dequant(q, load_u16(vscale + 2 * g), load_u16(vmn + 2 * g));
        } else out = load_u16(vres + ((size_t)(t - s.tv) * s.D + c) * 2);
        v[dst] = out;
    }
}

/* ---- launch blocks: streams that share a table region, which the block stages in shared memory ---- */

typedef struct {
    uint32_t stream0, nstreams; /* the block's streams (one thread each) */
    uint32_t cum_off, ncum;     /* its tables: cum entries [cum_off, cum_off + ncum) of the call */
} tab_block;

/* Stages the block's tables as C (uint16 when every entry fits) in shared memory, or points into global memory
 * when they do not fit (smem == 0). Returns the tables' base. */
template <typename C>
__device__ const C *block_tables(const tab_block &b, const uint32_t *__restrict__ cum, int smem, C *sh) {
    if (!smem) return (const C *)(cum + b.cum_off); /* C is uint32_t then */
    for (uint32_t i = threadIdx.x; i < b.ncum; i += blockDim.x) sh[i] = (C)__ldg(cum + b.cum_off + i);
    __syncthreads();
    return sh;
}

/* ---- CacheGen: one thread per (chunk, layer, K|V, kv-head, channel group) stream ---- */

typedef struct {
    uint64_t in_off;    /* stream bytes in the uploaded input */
    uint64_t scale_off; /* fp16 scales [ntokens] of this side in the uploaded input */
    uint32_t len, tab;  /* tab: table of channel d0 relative to the block's tables; tables are nsym+1 apart */
    int32_t layer, kv, head, d0, d1, token0, ntokens, M, nsym, top_step, tb, delta, group;
} cg_stream;

template <typename C>
__global__ void cg_kernel(const tab_block *__restrict__ blocks, const cg_stream *__restrict__ st,
                          const uint8_t *__restrict__ in, const uint32_t *__restrict__ cum, int smem, uint16_t *k,
                          uint16_t *v, int H, int T, int D, int *errs) {
    extern __shared__ uint32_t shared_words[];
    const tab_block b = blocks[blockIdx.x];
    const C *tabs = block_tables<C>(b, cum, smem, (C *)shared_words);
    if (threadIdx.x >= b.nstreams) return;
    const int i = (int)(b.stream0 + threadIdx.x);
    const cg_stream s = st[i];
    rcd d;
    int e = rcd_init(&d, in + s.in_off, s.len);
    if (e) {
        errs[i] = e;
        return;
    }
    uint16_t *base = (s.kv ? v : k) + (((size_t)s.layer * H + s.head) * T) * D;
    const int stride = s.nsym + 1, vec8 = s.d1 - s.d0 == 8 && D % 8 == 0;
    for (int tt = 0; tt < s.ntokens; tt++) {
        float step = __fdiv_rn(h2f(load_u16(in + s.scale_off + 2 * (size_t)tt)), (float)s.M);
        int rel = s.delta ? tt % s.group : 0;
        uint16_t *x = base + (size_t)(s.token0 + tt) * D;
        const uint16_t *xa = x - (size_t)rel * D;
        const C *tab = tabs + s.tab;
        if (vec8) { /* the default layout: 8 channels of a head, one 16-byte store per token */
            half8 out, anc;
            if (rel) anc.v = *(const uint4 *)(xa + s.d0);
#pragma unroll
            for (int j = 0; j < 8; j++, tab += stride) {
                int sym = rcd_get(&d, tab, s.nsym, s.top_step, s.tb);
                if (sym < 0) {
                    errs[i] = -sym;
                    return;
                }
                float q = sym == s.M ? 0.0f : __fmul_rn((float)(sym - s.M), step);
                out.h[j] = f2h(rel ? __fadd_rn(h2f(anc.h[j]), q) : __fadd_rn(0.0f, q));
            }
            *(uint4 *)(x + s.d0) = out.v;
            continue;
        }
        for (int c = s.d0; c < s.d1; c++, tab += stride) {
            int sym = rcd_get(&d, tab, s.nsym, s.top_step, s.tb);
            if (sym < 0) {
                errs[i] = -sym;
                return;
            }
            float q = sym == s.M ? 0.0f : __fmul_rn((float)(sym - s.M), step);
            x[c] = f2h(rel ? __fadd_rn(h2f(xa[c]), q) : __fadd_rn(0.0f, q));
        }
    }
    errs[i] = d.pos != d.len ? SE_TRAILING : SE_OK;
}

/* ---- semantic: one thread per substream ---- */

typedef struct {
    uint64_t scale_off; /* level 0: fp16 scales [n][2] of the batch in the uploaded input */
    uint32_t cum_off;   /* tables [2][D], nsym+1 apart (the block's tables start there) */
    int32_t level, delta, off, lim, nsym, top_step, tb, group_layers, nbins;
    int32_t m[WK_SEM_MAX_BINS]; /* bins/2 - 1 per layer group */
} sem_batch_dev;

typedef struct {
    uint64_t in_off;
    uint32_t len, batch;
    uint32_t unit0; /* first unit of the substream, index into the call's ids / vals / codes */
    uint32_t first; /* its index inside the batch (scales) */
    uint32_t n;     /* units */
} sem_stream;

template <typename C>
__global__ void sem_kernel(const tab_block *__restrict__ blocks, const sem_stream *__restrict__ ss,
                           const sem_batch_dev *__restrict__ batches, const uint8_t *__restrict__ in,
                           const uint32_t *__restrict__ cum, int smem, const uint32_t *__restrict__ ids,
                           const uint16_t *k, const uint16_t *v, float *step, uint16_t *vals, int8_t *codes, int H,
                           int T, int D, int *errs) {
    extern __shared__ uint32_t shared_words[];
    const tab_block tb = blocks[blockIdx.x];
    const C *tabs = block_tables<C>(tb, cum, smem, (C *)shared_words);
    if (threadIdx.x >= tb.nstreams) return;
    const int i = (int)(tb.stream0 + threadIdx.x);
    sem_stream s = ss[i];
    const sem_batch_dev *b = batches + s.batch;
    rcd d;
    int e = rcd_init(&d, in + s.in_off, s.len);
    if (e) {
        errs[i] = e;
        return;
    }
    const int stride = b->nsym + 1, level = b->level;
    for (uint32_t u = 0; u < s.n; u++) {
        uint32_t id = ids[s.unit0 + u];
        int g = (int)(id / ((uint32_t)H * T)) / b->group_layers;
        int M = b->m[g < b->nbins ? g : b->nbins - 1];
        for (int kv = 0; kv < 2; kv++) {
            float step0 = level == 0
                              ? __fdiv_rn(h2f(load_u16(in + b->scale_off + 4 * (size_t)(s.first + u) + 2 * kv)),
                                          (float)M)
                              : step[2 * (size_t)id + kv];
            float st = ldexpf(step0, -2 * level);
            const uint16_t *cur = (kv ? v : k) + (size_t)id * D;
            size_t at = ((size_t)(s.unit0 + u) * 2 + kv) * D;
            const C *tab = tabs + (size_t)kv * D * stride;
            if (D % 8 == 0 && !b->delta) { /* 16-byte loads of the previous level and stores of the result */
                for (int c0 = 0; c0 < D; c0 += 8) {
                    half8 prev, out;
                    if (level > 0) prev.v = *(const uint4 *)(cur + c0);
#pragma unroll
                    for (int j = 0; j < 8; j++, tab += stride) {
                        int sym = rcd_get(&d, tab, b->nsym, b->top_step, b->tb);
                        if (sym < 0) {
                            errs[i] = -sym;
                            return;
                        }
                        int q = sym - b->off;
                        if (q < -b->lim || q > b->lim) {
                            errs[i] = SE_CODE;
                            return;
                        }
                        float x = level == 0
                                      ? round_fp16(q ? __fmul_rn((float)q, step0) : 0.0f)
                                      : round_fp16(__fadd_rn(h2f(prev.h[j]), q ? __fmul_rn((float)q, st) : 0.0f));
                        out.h[j] = f2h(x);
                    }
                    *(uint4 *)(vals + at + c0) = out.v;
                }
                if (level == 0) step[2 * (size_t)id + kv] = step0;
                continue;
            }
            for (int c = 0; c < D; c++, tab += stride) {
                int sym = rcd_get(&d, tab, b->nsym, b->top_step, b->tb);
                if (sym < 0) {
                    errs[i] = -sym;
                    return;
                }
                int q = sym - b->off + (b->delta && u > 0 ? codes[at + c - 2 * (size_t)D] : 0);
                if (q < -b->lim || q > b->lim) {
                    errs[i] = SE_CODE;
                    return;
                }
                if (b->delta) codes[at + c] = (int8_t)q;
                float x = level == 0 ? round_fp16(q ? __fmul_rn((float)q, step0) : 0.0f)
                                     : round_fp16(__fadd_rn(h2f(cur[c]), q ? __fmul_rn((float)q, st) : 0.0f));
                vals[at + c] = f2h(x);
            }
            if (level == 0) step[2 * (size_t)id + kv] = step0;
        }
    }
    errs[i] = d.pos != d.len ? SE_TRAILING : SE_OK;
}

/* vals [n][2][D] -> k, v rows of ids[n] */
__global__ void sem_commit(const uint32_t *__restrict__ ids, const uint16_t *__restrict__ vals, size_t n, int D,
                           uint16_t *k, uint16_t *v) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * 2 * D) return;
    size_t unit = i / (2 * (size_t)D);
    int kv = (int)(i / D % 2), c = (int)(i % D);
    (kv ? v : k)[(size_t)ids[unit] * D + c] = vals[i];
}

/* ---- context ---- */

typedef struct {
    void *p;
    size_t cap;
} dbuf;

struct wk_kv_cuda {
    int L, H, T, D;
    size_t elems;  /* L*H*T*D */
    uint16_t *k, *v;
    float *step;   /* semantic map steps [L*H*T][2] */
    uint8_t *level; /* host: semantic map levels [L*H*T] */
    uint32_t *wave; /* host: wave stamp per unit (a unit touched twice in one wave starts a new wave) */
    uint32_t wave_no;
    cudaStream_t stream;
    cudaEvent_t ev0, ev1;
    dbuf in, cum, desc, blocks, batches, ids, vals, codes, errs;
    dbuf export_ids; /* ids of a wk_kv_cuda_export_ids call */
    wk_kv_cuda_timing last;
    char device[320];
};

static int dbuf_fit(dbuf *b, size_t n, wk_err *err) {
    if (n <= b->cap) return 0;
    cudaFree(b->p);
    b->p = NULL;
    b->cap = 0;
    size_t cap = n + n / 4 + 256;
    CK(cudaMalloc(&b->p, cap));
    b->cap = cap;
    return 0;
}

/* Host staging of one call: uploaded input bytes, tables, descriptors. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} hbuf;

static int hbuf_add(hbuf *b, const void *p, size_t n, wk_err *err) {
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 4096;
        uint8_t *q = (uint8_t *)realloc(b->data, cap);
        if (!q) return wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of host memory for %zu bytes", cap);
        b->data = q;
        b->cap = cap;
    }
    if (p) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int upload(dbuf *d, const hbuf *h, cudaStream_t s, wk_err *err) {
    int rc = dbuf_fit(d, h->len, err);
    if (rc) return rc;
    if (h->len) CK(cudaMemcpyAsync(d->p, h->data, h->len, cudaMemcpyHostToDevice, s));
    return 0;
}

extern "C" int wk_kv_cuda_open(int layers, int kv_heads, int tokens, int head_dim, wk_kv_cuda **out, wk_err *err) {
    *out = NULL;
    if (layers < 1 || kv_heads < 1 || tokens < 1 || head_dim < 1 || layers > WK_KV_MAX_LAYERS ||
        kv_heads > WK_KV_MAX_HEADS || tokens > WK_KV_MAX_TOKENS || head_dim > WK_KV_MAX_HEAD_DIM)
        return wk_err_set(err, WK_EINVAL, "cuda kv decode: shape %dx%dx%dx%d", layers, kv_heads, tokens, head_dim);
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError();
        return wk_err_set(err, WK_EUNSUPPORTED, "cuda kv decode: no CUDA device");
    }
    wk_kv_cuda *g = (wk_kv_cuda *)calloc(1, sizeof *g);
    if (!g) return wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory");
    g->L = layers;
    g->H = kv_heads;
    g->T = tokens;
    g->D = head_dim;
    size_t units = (size_t)layers * kv_heads * tokens;
    g->elems = units * head_dim;
    g->level = (uint8_t *)calloc(units, 1);
    g->wave = (uint32_t *)calloc(units, sizeof(uint32_t));
    int rc = 0;
    if (!g->level || !g->wave) rc = wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory for %zu units", units);
    cudaDeviceProp prop;
    if (!rc && cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(g->device, sizeof g->device, "%s, %zu MiB", prop.name, prop.totalGlobalMem >> 20);
#define OPEN_CK(call)                                                                                                  \
    do {                                                                                                               \
        cudaError_t ce_ = (call);                                                                                      \
        if (!rc && ce_ != cudaSuccess)                                                                                 \
            rc = wk_err_set(err, WK_EIO, "cuda kv decode: %s: %s", #call, cudaGetErrorString(ce_));                  \
    } while (0)
    if (!rc) OPEN_CK(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev0));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev1));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->k, g->elems * 2));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->v, g->elems * 2));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->step, units * 2 * sizeof(float)));
    if (!rc) OPEN_CK(cudaMemset(g->k, 0, g->elems * 2));
    if (!rc) OPEN_CK(cudaMemset(g->v, 0, g->elems * 2));
    if (!rc) OPEN_CK(cudaMemset(g->step, 0, units * 2 * sizeof(float)));
#undef OPEN_CK
    if (rc) {
        wk_kv_cuda_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

extern "C" void wk_kv_cuda_free(wk_kv_cuda *g) {
    if (!g) return;
    dbuf *bufs[] = {&g->in,   &g->cum,  &g->desc,  &g->blocks, &g->batches,
                    &g->ids,  &g->vals, &g->codes, &g->errs,   &g->export_ids};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]->p);
    cudaFree(g->k);
    cudaFree(g->v);
    cudaFree(g->step);
    if (g->ev0) cudaEventDestroy(g->ev0);
    if (g->ev1) cudaEventDestroy(g->ev1);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g->level);
    free(g->wave);
    free(g);
}

extern "C" void wk_kv_cuda_device(const wk_kv_cuda *g, char *buf, size_t cap) { snprintf(buf, cap, "%s", g->device); }

extern "C" void wk_kv_cuda_last_timing(const wk_kv_cuda *g, wk_kv_cuda_timing *t) { *t = g->last; }

extern "C" void wk_kv_cuda_sem_reset(wk_kv_cuda *g) {
    memset(g->level, 0, (size_t)g->L * g->H * g->T);
}

static int same_shape(const wk_kv_cuda *g, const wk_kv_tensor *t, wk_err *err) {
    if (t->layers != g->L || t->kv_heads != g->H || t->tokens != g->T || t->head_dim != g->D)
        return wk_err_set(err, WK_EINVAL, "cuda kv decode: tensor %dx%dx%dx%d, context %dx%dx%dx%d", t->layers,
                          t->kv_heads, t->tokens, t->head_dim, g->L, g->H, g->T, g->D);
    return 0;
}

extern "C" int wk_kv_cuda_upload(wk_kv_cuda *g, const wk_kv_tensor *t, wk_err *err) {
    int rc = same_shape(g, t, err);
    if (rc) return rc;
    CK(cudaMemcpy(g->k, t->k, g->elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(g->v, t->v, g->elems * 2, cudaMemcpyHostToDevice));
    return 0;
}

extern "C" int wk_kv_cuda_download(const wk_kv_cuda *g, wk_kv_tensor *t, wk_err *err) {
    int rc = same_shape(g, t, err);
    if (rc) return rc;
    CK(cudaStreamSynchronize(g->stream));
    CK(cudaMemcpy(t->k, g->k, g->elems * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(t->v, g->v, g->elems * 2, cudaMemcpyDeviceToHost));
    return 0;
}

/* Waits for the work queued since ev0 and adds its time to the call's kernel time. */
static int timed_sync(wk_kv_cuda *g, wk_err *err) {
    CK(cudaEventRecord(g->ev1, g->stream));
    CK(cudaEventSynchronize(g->ev1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
    g->last.kernel_s += ms * 1e-3;
    return 0;
}

/* Layers [l0, l0 + nl) x heads [h0, h0 + nh) x tokens [t0, t0 + nt) inside the context's tensor. */
static int box_check(const wk_kv_cuda *g, int l0, int nl, int h0, int nh, int t0, int nt, wk_err *err) {
    if (l0 < 0 || nl < 1 || l0 > g->L - nl || h0 < 0 || nh < 1 || h0 > g->H - nh || t0 < 0 || nt < 1 || t0 > g->T - nt)
        return wk_err_set(err, WK_EINVAL, "cuda kv decode: layers %d+%d heads %d+%d tokens %d+%d outside %dx%dx%d", l0,
                          nl, h0, nh, t0, nt, g->L, g->H, g->T);
    return 0;
}

extern "C" int wk_kv_cuda_kivi_rows(wk_kv_cuda *g, const wk_kivi_params *p, int layer0, int nlayers, int head0,
                                    int nheads, int token0, int ntokens, const uint8_t *in, size_t len, wk_err *err) {
    memset(&g->last, 0, sizeof g->last);
    int rc = box_check(g, layer0, nlayers, head0, nheads, token0, ntokens, err);
    if (!rc) rc = wk_kivi_check(p, g->D, err);
    if (rc) return rc;
    size_t per = (size_t)wk_kivi_bytes(p, ntokens, g->D), n = (size_t)nlayers * nheads;
    if (len != per * n)
        return wk_err_set(err, WK_EFORMAT, "kivi stream: %zu bytes, shape needs %zu (%zu per head)", len, per * n,
                          per);
    double a = now_s();
    rc = dbuf_fit(&g->in, len, err);
    if (rc) return rc;
    CK(cudaMemcpyAsync(g->in.p, in, len, cudaMemcpyHostToDevice, g->stream));
    CK(cudaStreamSynchronize(g->stream));
    g->last.upload_s = now_s() - a;
    kivi_shape s;
    s.T = ntokens;
    s.D = g->D;
    s.G = p->group;
    s.b = p->bits;
    s.F = 32 / p->bits;
    s.tk = wk_kivi_quantized_key_tokens(p, ntokens);
    s.tv = wk_kivi_quantized_value_tokens(p, ntokens);
    s.kgroups = s.tk / s.G;
    s.vgroups = (s.D + s.G - 1) / s.G;
    s.per = per;
    s.H = g->H;
    s.TT = g->T;
    s.l0 = layer0;
    s.h0 = head0;
    s.nh = nheads;
    s.t0 = token0;
    size_t vals = n * ntokens * g->D;
    CK(cudaEventRecord(g->ev0, g->stream));
    size_t blocks = (2 * vals + THREADS - 1) / THREADS;
    kivi_kernel<<<(unsigned)blocks, THREADS, 0, g->stream>>>(s, (const uint8_t *)g->in.p, vals, g->k, g->v);
    CK(cudaGetLastError());
    g->last.in_bytes = len;
    return timed_sync(g, err);
}

extern "C" int wk_kv_cuda_kivi(wk_kv_cuda *g, const wk_kivi_params *p, const uint8_t *in, size_t len, wk_err *err) {
    return wk_kv_cuda_kivi_rows(g, p, 0, g->L, 0, g->H, 0, g->T, in, len, err);
}

/* ---- CacheGen host side: headers, tables, lengths (the checks of cachegen.c's decoder) ---- */

typedef struct {
    hbuf in, cum, desc, blocks;
    size_t max_ncum;     /* largest table region of a block */
    uint32_t max_streams; /* most streams of a block */
    int max_tb;          /* largest table_bits */
} stage;

static void stage_free(stage *s) {
    free(s->in.data);
    free(s->cum.data);
    free(s->desc.data);
    free(s->blocks.data);
}

/* Launch blocks of at most this many streams (threads). */
#define BLOCK_STREAMS 128

/* Adds blocks for streams [stream0, stream0 + n) sharing tables [cum_off, cum_off + ncum). */
static int add_blocks(stage *st, uint32_t stream0, uint32_t n, uint32_t cum_off, uint32_t ncum, int tb,
                      wk_err *err) {
    for (uint32_t i = 0; i < n; i += BLOCK_STREAMS) {
        tab_block b = {stream0 + i, n - i < BLOCK_STREAMS ? n - i : BLOCK_STREAMS, cum_off, ncum};
        if (hbuf_add(&st->blocks, &b, sizeof b, err)) return WK_ENOMEM;
        if (b.nstreams > st->max_streams) st->max_streams = b.nstreams;
    }
    if (ncum > st->max_ncum) st->max_ncum = ncum;
    if (tb > st->max_tb) st->max_tb = tb;
    return 0;
}

/* How a launch reads its tables: staged in shared memory as uint16 (every table_bits < 16) or uint32, or
 * straight from global memory when a block's tables exceed what shared memory holds. */
typedef struct {
    int smem, wide;
    size_t bytes;
    unsigned threads, blocks;
} launch_cfg;

#define SMEM_MAX (96 * 1024)

static launch_cfg launch_of(const stage *st) {
    launch_cfg c;
    c.wide = st->max_tb >= 16;
    c.bytes = st->max_ncum * (c.wide ? 4 : 2);
    c.smem = c.bytes <= SMEM_MAX;
    if (!c.smem) {
        c.wide = 1;
        c.bytes = 0;
    }
    c.threads = (st->max_streams + 31) / 32 * 32;
    c.blocks = (unsigned)(st->blocks.len / sizeof(tab_block));
    return c;
}

template <typename K>
static int allow_smem(K kernel, const launch_cfg *c, wk_err *err) {
    if (c->bytes > 48 * 1024)
        CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)c->bytes));
    return 0;
}

/* One stored table (rangecoder.h format) straight into cum [nsym + 1]: the bytes it took, or 0 when anything is
 * off (then wk_rc_table_read runs for the exact error). The hot loop of the host side: one pass, no calls. */
static size_t fast_table(const uint8_t *p, size_t avail, int nsym, int tb, uint32_t *cum) {
    if (avail < 2) return 0;
    int lo = p[0], hi = p[1];
    if (lo > hi || hi >= nsym) return 0;
    size_t at = 2;
    uint32_t sum = 0;
    for (int s = 0; s <= lo; s++) cum[s] = 0;
    for (int s = lo; s <= hi; s++) {
        uint32_t f = 0;
        int shift = 0;
        for (;;) {
            if (at >= avail || shift > 14) return 0; /* frequencies are at most 2^16: 3 bytes */
            uint8_t b = p[at++];
            f |= (uint32_t)(b & 0x7F) << shift;
            shift += 7;
            if (!(b & 0x80)) break;
        }
        sum += f;
        if (f > (1u << tb) || sum > (1u << tb)) return 0;
        cum[s + 1] = sum;
    }
    if (sum != (1u << tb)) return 0;
    for (int s = hi + 1; s < nsym; s++) cum[s + 1] = sum;
    return at;
}

/* Reads nt tables of nsym symbols into the staged cum array; returns the index of the first. */
static int stage_tables(stage *st, wk_rbuf *r, int nt, int nsym, int tb, uint32_t *first, wk_err *err) {
    *first = (uint32_t)(st->cum.len / sizeof(uint32_t));
    int rc = hbuf_add(&st->cum, NULL, (size_t)nt * (nsym + 1) * sizeof(uint32_t), err);
    if (rc) return rc;
    uint32_t *dst = (uint32_t *)st->cum.data + *first;
    wk_rc_table tab;
    for (int i = 0; i < nt; i++, dst += nsym + 1) {
        size_t took = fast_table(r->data + r->pos, r->len - r->pos, nsym, tb, dst);
        if (took) {
            r->pos += took;
            continue;
        }
        if (wk_rc_table_read(&tab, nsym, tb, r, err)) return WK_EFORMAT;
        memcpy(dst, tab.cum, sizeof(uint32_t) * (nsym + 1));
    }
    return 0;
}

typedef struct {
    int level, delta, group, table_bits, stream_channels, layers, layer0, nlayers;
    uint32_t token0, ntokens;
} cg_head;

static int cg_parse_header(wk_rbuf *r, const wk_kv_cuda *g, cg_head *h, wk_err *err) {
    uint8_t b[10];
    uint16_t f[5];
    if (wk_rbuf_bytes(r, b, 10, "header", err)) return WK_EFORMAT;
    if (memcmp(b, "WKCG", 4) != 0) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 0 (magic): bad magic");
    if (b[4] != WK_CG_VERSION)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 4 (version): %u, expected %d", b[4], WK_CG_VERSION);
    if (b[5] >= WK_CG_LEVELS) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 5 (level): %d", b[5]);
    if (b[6] > 1) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 6 (flags): 0x%x", b[6]);
    if (b[7] < 1) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 7 (anchor_group): 0");
    if (b[8] < 6 || b[8] > WK_RC_MAX_TOTAL_BITS)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 8 (table_bits): %d", b[8]);
    if (b[9] < 1) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 9 (stream_channels): 0");
    for (int i = 0; i < 5; i++)
        if (wk_rbuf_u16(r, &f[i], "header", err)) return WK_EFORMAT;
    if (wk_rbuf_u32(r, &h->token0, "token0", err) || wk_rbuf_u32(r, &h->ntokens, "ntokens", err)) return WK_EFORMAT;
    h->level = b[5];
    h->delta = b[6] & 1;
    h->group = b[7];
    h->table_bits = b[8];
    h->stream_channels = b[9];
    h->layers = f[0];
    h->layer0 = f[1];
    h->nlayers = f[2];
    uint32_t *token0 = &h->token0, *ntokens = &h->ntokens;
    if (f[0] != g->L || f[3] != g->H || f[4] != g->D)
        return wk_err_set(err, WK_EFORMAT,
                          "cachegen chunk: offset 10 (shape): layers %d kv_heads %d head_dim %d, tensor has %d %d %d",
                          f[0], f[3], f[4], g->L, g->H, g->D);
    if (f[2] < 1 || f[1] + f[2] > f[0])
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 12 (layer0/nlayers): %d+%d past %d layers", f[1],
                          f[2], f[0]);
    if (*ntokens < 1 || *token0 > (uint32_t)g->T || *ntokens > (uint32_t)g->T - *token0)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: offset 20 (token0/ntokens): %u+%u past %d tokens", *token0,
                          *ntokens, g->T);
    return 0;
}

/* Stages one chunk (its bytes start at `base` in the staged input). */
/* lens: room for the stream lengths of one layer, 2 * H * D (stream_channels >= 1) */
static int cg_stage_chunk(stage *st, const wk_kv_cuda *g, const uint8_t *in, size_t len, uint64_t base,
                          uint64_t *lens, wk_err *err) {
    wk_rbuf r;
    wk_rbuf_init(&r, in, len, "cachegen chunk");
    cg_head h;
    int rc = cg_parse_header(&r, g, &h, err);
    if (rc) return rc;
    const uint32_t token0 = h.token0, ntokens = h.ntokens;
    if ((uint64_t)ntokens * 4 * (uint64_t)h.nlayers > len)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: %u tokens x %d layers cannot fit in %zu bytes", ntokens,
                          h.nlayers, len);
    const int C = g->H * g->D;
    for (int layer = h.layer0; layer < h.layer0 + h.nlayers; layer++) {
        int M[2], nsym[2];
        uint64_t scale_off[2];
        uint32_t cum_first[2];
        for (int kv = 0; kv < 2; kv++) {
            M[kv] = wk_cg_bins(h.level, layer, h.layers, kv) / 2 - 1;
            nsym[kv] = 2 * M[kv] + 1;
            scale_off[kv] = base + r.pos;
            if (!wk_rbuf_take(&r, (size_t)ntokens * 2, "scales", err)) return WK_EFORMAT;
        }
        for (int kv = 0; kv < 2; kv++)
            if (stage_tables(st, &r, C, nsym[kv], h.table_bits, &cum_first[kv], err)) return WK_EFORMAT;
        const int G = h.stream_channels, ng = (g->D + G - 1) / G, ns = 2 * g->H * ng;
        uint64_t total = 0;
        for (int i = 0; i < ns; i++) {
            if (wk_rbuf_varint(&r, &lens[i], "stream length", err)) return WK_EFORMAT;
            if (lens[i] > r.len)
                return wk_err_set(err, WK_EFORMAT, "cachegen chunk: stream length %llu past the end",
                                  (unsigned long long)lens[i]);
            total += lens[i];
        }
        if (total > r.len - r.pos)
            return wk_err_set(err, WK_EFORMAT,
                              "cachegen chunk: layer %d streams need %llu bytes at offset %zu, %zu left", layer,
                              (unsigned long long)total, r.pos, r.len - r.pos);
        for (int kv = 0; kv < 2; kv++)
            for (int hd = 0; hd < g->H; hd++) { /* one block set per head: its D tables */
                uint32_t stream0 = (uint32_t)(st->desc.len / sizeof(cg_stream)), stride = (uint32_t)(nsym[kv] + 1);
                for (int gi = 0; gi < ng; gi++) {
                    cg_stream s;
                    s.in_off = base + r.pos;
                    s.len = (uint32_t)lens[(kv * g->H + hd) * ng + gi];
                    s.scale_off = scale_off[kv];
                    s.d0 = gi * G;
                    s.d1 = s.d0 + G < g->D ? s.d0 + G : g->D;
                    s.tab = (uint32_t)s.d0 * stride;
                    s.layer = layer;
                    s.kv = kv;
                    s.head = hd;
                    s.token0 = (int)token0;
                    s.ntokens = (int)ntokens;
                    s.M = M[kv];
                    s.nsym = nsym[kv];
                    s.top_step = top_step_of(nsym[kv]);
                    s.tb = h.table_bits;
                    s.delta = h.delta;
                    s.group = h.group;
                    if (hbuf_add(&st->desc, &s, sizeof s, err)) return WK_ENOMEM;
                    r.pos += s.len;
                }
                if (add_blocks(st, stream0, (uint32_t)ng, cum_first[kv] + (uint32_t)hd * g->D * stride,
                               (uint32_t)g->D * stride, h.table_bits, err))
                    return WK_ENOMEM;
            }
    }
    if (r.pos != len)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk: %zu trailing bytes at offset %zu", len - r.pos, r.pos);
    return 0;
}

/* First failing stream of the last launch: *bad = its index (-1 if none), *code = its SE_* code. */
static int check_stream_errors(wk_kv_cuda *g, int n, int *bad, int *code, wk_err *err) {
    *bad = -1;
    *code = 0;
    if (n == 0) return 0;
    int *h = (int *)malloc(sizeof(int) * (size_t)n);
    if (!h) return wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory");
    cudaError_t ce = cudaMemcpy(h, g->errs.p, sizeof(int) * (size_t)n, cudaMemcpyDeviceToHost);
    for (int i = 0; ce == cudaSuccess && i < n; i++)
        if (h[i]) {
            *bad = i;
            *code = h[i];
            break;
        }
    free(h);
    if (ce != cudaSuccess) return wk_err_set(err, WK_EIO, "cuda kv decode: %s", cudaGetErrorString(ce));
    return 0;
}

static int stage_upload(wk_kv_cuda *g, const stage *st, wk_err *err) {
    double a = now_s();
    int rc = upload(&g->in, &st->in, g->stream, err);
    if (!rc) rc = upload(&g->cum, &st->cum, g->stream, err);
    if (!rc) rc = upload(&g->desc, &st->desc, g->stream, err);
    if (!rc) rc = upload(&g->blocks, &st->blocks, g->stream, err);
    if (rc) return rc;
    CK(cudaStreamSynchronize(g->stream));
    g->last.upload_s += now_s() - a;
    return 0;
}

extern "C" int wk_kv_cuda_cachegen(wk_kv_cuda *g, int n, const uint8_t *const *chunk, const size_t *len,
                                   wk_err *err) {
    memset(&g->last, 0, sizeof g->last);
    stage st;
    memset(&st, 0, sizeof st);
    double a = now_s();
    uint64_t *lens = (uint64_t *)malloc(sizeof(uint64_t) * 2 * (size_t)g->H * g->D);
    int rc = lens ? 0 : wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory");
    for (int c = 0; !rc && c < n; c++) {
        uint64_t base = st.in.len;
        rc = hbuf_add(&st.in, chunk[c], len[c], err);
        if (!rc && cg_stage_chunk(&st, g, chunk[c], len[c], base, lens, err))
            rc = wk_err_prefix(err, "chunk %d", c);
        g->last.in_bytes += len[c];
    }
    free(lens);
    g->last.parse_s = now_s() - a;
    int ns = (int)(st.desc.len / sizeof(cg_stream));
    g->last.streams = ns;
    if (!rc) rc = stage_upload(g, &st, err);
    if (!rc) rc = dbuf_fit(&g->errs, sizeof(int) * (size_t)(ns ? ns : 1), err);
    if (!rc && ns) {
        launch_cfg lc = launch_of(&st);
        const tab_block *bl = (const tab_block *)g->blocks.p;
        const cg_stream *sd = (const cg_stream *)g->desc.p;
        const uint8_t *in = (const uint8_t *)g->in.p;
        const uint32_t *cum = (const uint32_t *)g->cum.p;
        rc = lc.wide ? allow_smem(cg_kernel<uint32_t>, &lc, err) : allow_smem(cg_kernel<uint16_t>, &lc, err);
        if (rc) return rc;
        CK(cudaEventRecord(g->ev0, g->stream));
        if (lc.wide)
            cg_kernel<uint32_t><<<lc.blocks, lc.threads, lc.bytes, g->stream>>>(bl, sd, in, cum, lc.smem, g->k, g->v,
                                                                                g->H, g->T, g->D, (int *)g->errs.p);
        else
            cg_kernel<uint16_t><<<lc.blocks, lc.threads, lc.bytes, g->stream>>>(bl, sd, in, cum, lc.smem, g->k, g->v,
                                                                                g->H, g->T, g->D, (int *)g->errs.p);
        CK(cudaGetLastError());
        rc = timed_sync(g, err);
        int bad, code;
        if (!rc) rc = check_stream_errors(g, ns, &bad, &code, err);
        if (!rc && bad >= 0) {
            const cg_stream *s = (const cg_stream *)st.desc.data + bad;
            rc = wk_err_set(err, WK_EFORMAT,
                            "cachegen chunk: layer %d %s head %d channels %d.. stream at input offset %llu: %s",
                            s->layer, s->kv ? "V" : "K", s->head, s->d0, (unsigned long long)s->in_off,
                            stream_error(code));
        }
    }
    stage_free(&st);
    return rc;
}

/* ---- semantic host side ---- */

typedef struct {
    stage s;            /* input bytes, tables, substreams, blocks */
    hbuf batches, ids;  /* sem_batch_dev per batch; unit ids of the wave */
    uint32_t units;     /* staged units of the wave */
} sem_stage;

static void sem_stage_free(sem_stage *st) {
    stage_free(&st->s);
    free(st->batches.data);
    free(st->ids.data);
}

typedef struct {
    int level, delta, tb, nbins, group_layers, bins[WK_SEM_MAX_BINS];
    uint32_t n;
} sem_head;

static int sem_parse_header(wk_rbuf *r, const wk_kv_cuda *g, sem_head *h, wk_err *err) {
    uint8_t b[8];
    uint16_t f[4];
    uint32_t tokens, version_expected = WK_SEM_VERSION;
    if (wk_rbuf_bytes(r, b, 8, "header", err)) return WK_EFORMAT;
    if (memcmp(b, "WKSM", 4) != 0) return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 0 (magic): bad magic");
    if (b[4] != version_expected)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 4 (version): %u, expected %u", b[4],
                          version_expected);
    h->level = b[5];
    h->delta = b[6] & 1;
    h->tb = b[7];
    if (h->level >= WK_SEM_MAX_LEVELS)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 5 (level): %d", h->level);
    if (b[6] > 3 || (h->delta && h->level > 0))
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 6 (flags): 0x%x", b[6]);
    for (int i = 0; i < 4; i++)
        if (wk_rbuf_u16(r, &f[i], "header", err)) return WK_EFORMAT;
    if (wk_rbuf_u32(r, &tokens, "tokens", err) || wk_rbuf_u32(r, &h->n, "n_units", err)) return WK_EFORMAT;
    if (f[0] != g->L || f[1] != g->H || f[2] != g->D || tokens != (uint32_t)g->T)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 8 (shape): %ux%ux%ux%u, tensor/map is %dx%dx%dx%d",
                          f[0], f[1], tokens, f[2], g->L, g->H, g->T, g->D);
    uint8_t nbins;
    if (wk_rbuf_u8(r, &nbins, "nbins", err)) return WK_EFORMAT;
    if (nbins < 1 || nbins > WK_SEM_MAX_BINS)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 24 (nbins): %u", nbins);
    h->nbins = nbins;
    h->group_layers = f[3];
    for (int i = 0; i < nbins; i++) {
        uint8_t v;
        if (wk_rbuf_u8(r, &v, "bins", err)) return WK_EFORMAT;
        h->bins[i] = v;
    }
    /* check_params of semantic.c */
    if (h->group_layers < 1 || h->tb < 6 || h->tb > WK_RC_MAX_TOTAL_BITS)
        return wk_err_set(err, WK_EFORMAT, "semantic batch header: group_layers %d, table_bits %d out of range",
                          h->group_layers, h->tb);
    for (int i = 0; i < nbins; i++)
        if (h->bins[i] < 4 || h->bins[i] > 32 || h->bins[i] % 2)
            return wk_err_set(err, WK_EFORMAT, "semantic batch header: bins[%d] = %d (even, 4..32)", i, h->bins[i]);
    size_t units = (size_t)g->L * g->H * g->T;
    if (h->n < 1 || h->n > units || h->n > r->len - r->pos)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 20 (n_units): %u does not fit", h->n);
    return 0;
}

/* Reads the ids, checks them against the map (as read_ids of semantic.c), stages them. *conflict is set
 * (and nothing staged) when a unit was already touched in this wave. */
static int sem_stage_ids(sem_stage *st, wk_kv_cuda *g, wk_rbuf *r, const sem_head *h, int *conflict, wk_err *err) {
    size_t units = (size_t)g->L * g->H * g->T;
    uint32_t first = st->units;
    int rc = hbuf_add(&st->ids, NULL, sizeof(uint32_t) * h->n, err);
    if (rc) return rc;
    uint32_t *ids = (uint32_t *)st->ids.data + first;
    int64_t prev = 0;
    uint32_t i;
    *conflict = 0;
    for (i = 0; i < h->n && !rc; i++) {
        uint64_t z;
        size_t at = r->pos;
        if (wk_rbuf_varint(r, &z, "unit id", err)) {
            rc = WK_EFORMAT;
            break;
        }
        int64_t id = z > UINT32_MAX * 2ull ? -1 : prev + (z & 1 ? -(int64_t)((z >> 1) + 1) : (int64_t)(z >> 1));
        if (id < 0 || (uint64_t)id >= units) {
            rc = wk_err_set(err, WK_EFORMAT, "semantic batch: unit %u id at offset %zu out of range", i, at);
            break;
        }
        if (g->wave[id] == g->wave_no) { /* touched by an earlier batch of this wave (or a duplicate here) */
            int dup = g->level[id] == 255;
            if (!dup) {
                *conflict = 1;
                break;
            }
        }
        if (g->level[id] != h->level) {
            rc = wk_err_set(err, WK_EFORMAT, "semantic batch: unit %lld at level %d, decoder has it at %d%s",
                            (long long)id, h->level, g->level[id] == 255 ? -1 : g->level[id] - 1,
                            g->level[id] == 255 ? " (duplicate in batch)" : "");
            break;
        }
        g->level[id] = 255;
        g->wave[id] = g->wave_no;
        ids[i] = (uint32_t)id;
        prev = id;
    }
    /* levels become level+1 for a good batch (committed for real only if the wave decodes) */
    for (uint32_t j = 0; j < i; j++) g->level[ids[j]] = (uint8_t)(rc || *conflict ? h->level : h->level + 1);
    if (rc || *conflict) {
        for (uint32_t j = 0; j < i; j++) g->wave[ids[j]] = g->wave_no - 1;
        st->ids.len -= sizeof(uint32_t) * h->n;
        return rc;
    }
    st->units += h->n;
    return 0;
}

/* Stages one batch after its ids: scales, tables, substreams. */
static int sem_stage_body(sem_stage *st, const wk_kv_cuda *g, wk_rbuf *r, const sem_head *h, uint64_t base,
                          uint32_t unit0, wk_err *err) {
    int maxm = 0;
    for (int i = 0; i < h->nbins; i++)
        if (h->bins[i] / 2 - 1 > maxm) maxm = h->bins[i] / 2 - 1;
    sem_batch_dev b;
    memset(&b, 0, sizeof b);
    b.level = h->level;
    b.delta = h->delta;
    b.nsym = h->level > 0 ? 5 : h->delta ? 4 * maxm + 1 : 2 * maxm + 1;
    b.off = h->level > 0 ? 2 : h->delta ? 2 * maxm : maxm;
    b.lim = h->level > 0 ? 2 : maxm;
    b.top_step = top_step_of(b.nsym);
    b.tb = h->tb;
    b.group_layers = h->group_layers;
    b.nbins = h->nbins;
    for (int i = 0; i < h->nbins; i++) b.m[i] = h->bins[i] / 2 - 1;
    b.scale_off = base + r->pos;
    if (h->level == 0 && !wk_rbuf_take(r, (size_t)h->n * 4, "scales", err)) return WK_EFORMAT;
    int rc = stage_tables(&st->s, r, 2 * g->D, b.nsym, h->tb, &b.cum_off, err);
    if (rc) return rc;
    uint64_t per = 0;
    if (wk_rbuf_varint(r, &per, "units per stream", err)) return WK_EFORMAT;
    if (per < 1 || per > h->n)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: %llu units per stream for %u units",
                          (unsigned long long)per, h->n);
    uint32_t nsub = (uint32_t)((h->n + per - 1) / per), batch_no = (uint32_t)(st->batches.len / sizeof b);
    size_t lens_at = r->pos;
    uint64_t total = 0;
    for (uint32_t s = 0; s < nsub; s++) {
        uint64_t l;
        if (wk_rbuf_varint(r, &l, "stream length", err)) return WK_EFORMAT;
        if (l > r->len) return wk_err_set(err, WK_EFORMAT, "semantic batch: stream %u length %llu past the end", s,
                                          (unsigned long long)l);
        total += l;
    }
    if (total != r->len - r->pos)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: streams need %llu bytes at offset %zu, %zu follow",
                          (unsigned long long)total, r->pos, r->len - r->pos);
    size_t desc_len = st->s.desc.len;
    wk_rbuf lr;
    wk_rbuf_init(&lr, r->data, r->len, "semantic batch");
    lr.pos = lens_at;
    for (uint32_t s = 0; s < nsub; s++) {
        uint64_t l;
        (void)wk_rbuf_varint(&lr, &l, "stream length", err);
        sem_stream d;
        d.in_off = base + r->pos;
        d.len = (uint32_t)l;
        d.batch = batch_no;
        d.first = (uint32_t)(s * per);
        d.unit0 = unit0 + d.first;
        d.n = (uint32_t)(s + 1 < nsub ? per : h->n - d.first);
        r->pos += l;
        if (hbuf_add(&st->s.desc, &d, sizeof d, err)) break;
    }
    size_t blocks_len = st->s.blocks.len;
    if (st->s.desc.len != desc_len + (size_t)nsub * sizeof(sem_stream) || hbuf_add(&st->batches, &b, sizeof b, err) ||
        add_blocks(&st->s, (uint32_t)(desc_len / sizeof(sem_stream)), nsub, b.cum_off,
                   (uint32_t)(2 * g->D * (b.nsym + 1)), h->tb, err)) {
        st->s.desc.len = desc_len; /* out of memory: drop this batch */
        st->s.blocks.len = blocks_len;
        st->batches.len = batch_no * sizeof b;
        return WK_ENOMEM;
    }
    return 0;
}

/* Decodes the staged wave: stream kernel, then (all streams good) the commit kernel. */
static int sem_run_wave(wk_kv_cuda *g, sem_stage *st, int first_batch, wk_err *err) {
    int ns = (int)(st->s.desc.len / sizeof(sem_stream));
    if (ns == 0) return 0;
    g->last.streams += ns;
    int rc = stage_upload(g, &st->s, err);
    double a = now_s();
    if (!rc) rc = upload(&g->batches, &st->batches, g->stream, err);
    if (!rc) rc = upload(&g->ids, &st->ids, g->stream, err);
    size_t vals = (size_t)st->units * 2 * g->D;
    if (!rc) rc = dbuf_fit(&g->vals, vals * 2, err);
    if (!rc) rc = dbuf_fit(&g->codes, vals, err);
    if (!rc) rc = dbuf_fit(&g->errs, sizeof(int) * (size_t)ns, err);
    if (rc) return rc;
    CK(cudaStreamSynchronize(g->stream));
    g->last.upload_s += now_s() - a;
    launch_cfg lc = launch_of(&st->s);
    rc = lc.wide ? allow_smem(sem_kernel<uint32_t>, &lc, err) : allow_smem(sem_kernel<uint16_t>, &lc, err);
    if (rc) return rc;
    const tab_block *bl = (const tab_block *)g->blocks.p;
    const sem_stream *sd = (const sem_stream *)g->desc.p;
    const sem_batch_dev *bd = (const sem_batch_dev *)g->batches.p;
    const uint8_t *in = (const uint8_t *)g->in.p;
    const uint32_t *cum = (const uint32_t *)g->cum.p, *ids = (const uint32_t *)g->ids.p;
    CK(cudaEventRecord(g->ev0, g->stream));
    if (lc.wide)
        sem_kernel<uint32_t><<<lc.blocks, lc.threads, lc.bytes, g->stream>>>(
            bl, sd, bd, in, cum, lc.smem, ids, g->k, g->v, g->step, (uint16_t *)g->vals.p, (int8_t *)g->codes.p, g->H,
            g->T, g->D, (int *)g->errs.p);
    else
        sem_kernel<uint16_t><<<lc.blocks, lc.threads, lc.bytes, g->stream>>>(
            bl, sd, bd, in, cum, lc.smem, ids, g->k, g->v, g->step, (uint16_t *)g->vals.p, (int8_t *)g->codes.p, g->H,
            g->T, g->D, (int *)g->errs.p);
    CK(cudaGetLastError());
    /* the commit waits for the error check: a failed wave must leave the tensor as it was */
    rc = timed_sync(g, err);
    int bad, code;
    if (!rc) rc = check_stream_errors(g, ns, &bad, &code, err);
    if (!rc && bad >= 0) {
        const sem_stream *s = (const sem_stream *)st->s.desc.data + bad;
        return wk_err_set(err, WK_EFORMAT, "batch %d: semantic batch: stream of units %u..%u at input offset %llu: %s",
                          first_batch + (int)s->batch, s->first, s->first + s->n - 1, (unsigned long long)s->in_off,
                          stream_error(code));
    }
    if (rc) return rc;
    CK(cudaEventRecord(g->ev0, g->stream));
    sem_commit<<<(unsigned)((vals + THREADS - 1) / THREADS), THREADS, 0, g->stream>>>(
        (const uint32_t *)g->ids.p, (const uint16_t *)g->vals.p, st->units, g->D, g->k, g->v);
    CK(cudaGetLastError());
    return timed_sync(g, err);
}

static void sem_stage_clear(sem_stage *st) {
    st->s.in.len = st->s.cum.len = st->s.desc.len = st->s.blocks.len = st->batches.len = st->ids.len = 0;
    st->s.max_ncum = 0;
    st->s.max_streams = 0;
    st->s.max_tb = 0;
    st->units = 0;
}

/* Restores the map levels of the units staged in the failed wave (they were set to level+1). */
static void sem_undo_levels(wk_kv_cuda *g, const sem_stage *st) {
    const uint32_t *ids = (const uint32_t *)st->ids.data;
    const sem_batch_dev *b = (const sem_batch_dev *)st->batches.data;
    const sem_stream *s = (const sem_stream *)st->s.desc.data;
    size_t ns = st->s.desc.len / sizeof *s;
    for (size_t i = 0; i < ns; i++)
        for (uint32_t u = 0; u < s[i].n; u++) g->level[ids[s[i].unit0 + u]] = (uint8_t)b[s[i].batch].level;
}

extern "C" int wk_kv_cuda_semantic(wk_kv_cuda *g, int n, const uint8_t *const *batch, const size_t *len,
                                   wk_err *err) {
    memset(&g->last, 0, sizeof g->last);
    sem_stage st;
    memset(&st, 0, sizeof st);
    int rc = 0, wave_first = 0;
    g->wave_no++;
    double parse = 0, a = now_s();
    for (int c = 0; !rc && c < n; c++) {
        wk_rbuf r;
        wk_rbuf_init(&r, batch[c], len[c], "semantic batch");
        sem_head h;
        int conflict = 0;
        rc = sem_parse_header(&r, g, &h, err);
        if (!rc) rc = sem_stage_ids(&st, g, &r, &h, &conflict, err);
        if (!rc && conflict) { /* decode what is staged, then this batch starts a new wave */
            parse += now_s() - a;
            rc = sem_run_wave(g, &st, wave_first, err);
            if (rc) break;
            a = now_s();
            sem_stage_clear(&st);
            wave_first = c;
            g->wave_no++;
            r.pos = 0;
            rc = sem_parse_header(&r, g, &h, err);
            if (!rc) rc = sem_stage_ids(&st, g, &r, &h, &conflict, err);
        }
        if (rc) {
            wk_err_prefix(err, "batch %d", c);
            break;
        }
        uint32_t unit0 = st.units - h.n;
        uint64_t base = st.s.in.len;
        rc = hbuf_add(&st.s.in, batch[c], len[c], err);
        if (!rc && sem_stage_body(&st, g, &r, &h, base, unit0, err)) {
            /* undo this batch's levels: it is not in the staged streams */
            const uint32_t *ids = (const uint32_t *)st.ids.data + unit0;
            for (uint32_t u = 0; u < h.n; u++) g->level[ids[u]] = (uint8_t)h.level;
            st.units -= h.n;
            rc = wk_err_prefix(err, "batch %d", c);
        }
        g->last.in_bytes += len[c];
    }
    parse += now_s() - a;
    if (!rc) rc = sem_run_wave(g, &st, wave_first, err);
    if (rc) sem_undo_levels(g, &st);
    g->last.parse_s = parse;
    sem_stage_free(&st);
    return rc;
}

/* ---- copying decoded vectors into a caller's cache ---- */

typedef struct {
    int H, T, D;            /* context shape */
    int l0, h0, nh, t0, nt; /* the box (ids == NULL) */
    size_t n;               /* threads: vectors * D / 8 */
    wk_kv_cuda_dest dst;
} export_args;

/* One thread per 8 values of a vector (K and V, 16-byte accesses): from the context's [L][H][T][D] rows into
 * the caller's [L][H][stride][D] rows, marking the vector present. Vector i is ids[i] or the i-th of the box.
 * CPU reference: the host sink of exec/kv_sink.h (wk_engine_kv_write_rows of the decoded rows). */
__global__ void export_kernel(export_args a, const uint32_t *__restrict__ ids, const uint16_t *__restrict__ k,
                              const uint16_t *__restrict__ v) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n) return;
    size_t per = (size_t)(a.D / 8), vec = i / per;
    int c = (int)(i % per) * 8;
    size_t lh, t;
    if (ids) {
        lh = ids[vec] / (uint32_t)a.T;
        t = ids[vec] % (uint32_t)a.T;
    } else {
        size_t b = vec / (size_t)a.nt;
        t = (size_t)a.t0 + vec % (size_t)a.nt;
        lh = (size_t)(b / a.nh + a.l0) * a.H + a.h0 + b % a.nh;
    }
    size_t src = (lh * a.T + t) * a.D + c, slot = lh * a.dst.token_stride + t, dst = slot * a.D + c;
    *(uint4 *)(a.dst.k + dst) = *(const uint4 *)(k + src);
    *(uint4 *)(a.dst.v + dst) = *(const uint4 *)(v + src);
    if (c == 0 && a.dst.present) a.dst.present[slot] = 1;
}

static int export_run(wk_kv_cuda *g, export_args *a, const uint32_t *ids, size_t vectors, wk_err *err) {
    if (!a->dst.k || !a->dst.v || a->dst.token_stride < g->T)
        return wk_err_set(err, WK_EINVAL, "cuda kv export: destination without K/V or token stride %d < %d tokens",
                          a->dst.token_stride, g->T);
    if (g->D % 8)
        return wk_err_set(err, WK_EUNSUPPORTED, "cuda kv export: head_dim %d (needs a multiple of 8, as the CUDA engine)",
                          g->D);
    a->H = g->H;
    a->T = g->T;
    a->D = g->D;
    a->n = vectors * (size_t)(g->D / 8);
    if (a->n == 0) return 0;
    export_kernel<<<(unsigned)((a->n + THREADS - 1) / THREADS), THREADS, 0, g->stream>>>(*a, ids, g->k, g->v);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(g->stream));
    return 0;
}

extern "C" int wk_kv_cuda_export_box(wk_kv_cuda *g, const wk_kv_cuda_dest *dst, int layer0, int nlayers, int head0,
                                     int nheads, int token0, int ntokens, wk_err *err) {
    int rc = box_check(g, layer0, nlayers, head0, nheads, token0, ntokens, err);
    if (rc) return rc;
    export_args a;
    memset(&a, 0, sizeof a);
    a.dst = *dst;
    a.l0 = layer0;
    a.h0 = head0;
    a.nh = nheads;
    a.t0 = token0;
    a.nt = ntokens;
    return export_run(g, &a, NULL, (size_t)nlayers * nheads * ntokens, err);
}

extern "C" int wk_kv_cuda_export_ids(wk_kv_cuda *g, const wk_kv_cuda_dest *dst, const uint32_t *ids, size_t n,
                                     wk_err *err) {
    size_t units = (size_t)g->L * g->H * g->T;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= units)
            return wk_err_set(err, WK_EINVAL, "cuda kv export: id %u (index %zu) beyond %zu vectors", ids[i], i, units);
    if (n == 0) return 0;
    int rc = dbuf_fit(&g->export_ids, n * sizeof(uint32_t), err);
    if (rc) return rc;
    CK(cudaMemcpyAsync(g->export_ids.p, ids, n * sizeof(uint32_t), cudaMemcpyHostToDevice, g->stream));
    export_args a;
    memset(&a, 0, sizeof a);
    a.dst = *dst;
    return export_run(g, &a, (const uint32_t *)g->export_ids.p, n, err);
}
