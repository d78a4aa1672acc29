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

/* Error codes written by the kernels (0: ok): SE_ of a stream, TE_ of a stored table, LE_ of a layer's layout. */
enum {
    SE_OK = 0, SE_SHORT, SE_FIRST, SE_GARBAGE, SE_OVERRUN, SE_TRAILING, SE_CODE,
    TE_RANGE, TE_VARINT, TE_PAST, TE_SUM,
    LE_TRUNC, LE_SIZE, LE_LENGTH, LE_VARINT, LE_STREAMS, LE_TRAILING, LE_EARLIER
};

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
/* floor(code / r), r > 0: a float estimate corrected by one step and checked, with the exact division when the
 * check fails (only garbage input, whose quotients can be large, gets there). Cheaper than an integer divide. */
__device__ __forceinline__ uint32_t quotient(uint32_t code, uint32_t r) {
    uint32_t q = __float2uint_rz(__fdividef(__uint2float_rz(code), __uint2float_rz(r)));
    long long rem = (long long)code - (long long)q * r;
    if (rem < 0) {
        q--;
        rem += r;
    } else if (rem >= (long long)r) {
        q++;
        rem -= r;
    }
    return rem >= 0 && rem < (long long)r ? q : code / r;
}

template <typename C>
__device__ __forceinline__ int rcd_get(rcd *d, const C *cum, int nsym, int top_step, int tb) {
    uint32_t r = d->range >> tb;
    uint32_t v = r ? quotient(d->code, r) : 0xFFFFFFFFu;
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

/* One thread per value of K or V of the (layer, kv-head) blocks from b0 on: part_vals values of each. */
__global__ void kivi_kernel(kivi_shape s, const uint8_t *__restrict__ in, size_t b0, size_t part_vals, uint16_t *k,
                            uint16_t *v) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= 2 * part_vals) return;
    int is_v = i >= part_vals;
    size_t j = b0 * s.T * s.D + (is_v ? i - part_vals : i), blk = j / ((size_t)s.T * s.D);
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

/* ---- CacheGen: a layout warp per (chunk, layer), then a block per group of streams of one side ---- */

/* One (chunk, layer) of a call. Streams of the call are numbered (chunk, layer, K|V, head, channel group),
 * tables (chunk, layer, K|V, channel); offsets found by the layout kernel are relative to the chunk. */
typedef struct {
    uint64_t base;    /* the chunk's first byte in the uploaded input */
    uint32_t len;     /* chunk bytes */
    uint32_t li;      /* layer index inside the chunk (0: its layer0) */
    uint32_t last;    /* 1: the chunk's last layer (it must end the chunk) */
    uint32_t stream0; /* its first stream: 2 * H * ng streams [K|V][head][group] */
    uint32_t table0;  /* its first table: 2 * H * D tables [K|V][channel] */
    int32_t chunk, layer, token0, ntokens, delta, group, tb, G, ng;
    int32_t nsym[2];
} cg_layer;

/* A launch block: streams [s0, s1) (s = head * ng + group) of one side of one cg_layer, and the tables of
 * their channels [c0, c1) (c = head * D + d), which the block expands from the chunk's bytes. */
typedef struct {
    uint32_t cl, c0, c1;
    int32_t kv, s0, s1, M, nsym, top_step;
} cg_block;

/* What the layout kernel finds, and the errors of a call (device arrays). */
typedef struct {
    uint32_t *lay_pos;          /* [cl] offset of the layer's scales */
    uint32_t *tab_at;           /* [table] offset of each stored table */
    uint32_t *str_at, *str_len; /* [stream] offset and bytes of each stream */
    int *cl_err;                /* [cl] layout error (0 ok) */
    uint32_t *cl_at;            /* [cl] its offset */
    uint32_t *tab_key;          /* [block] first failing table: index in the block << 8 | error (~0: none) */
    int *str_err;               /* [stream] stream error */
    int *flag;                  /* any error */
} cg_out;

__device__ __forceinline__ uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)__ldg(p) | (uint32_t)__ldg(p + 1) << 8 | (uint32_t)__ldg(p + 2) << 16 |
           (uint32_t)__ldg(p + 3) << 24;
}

__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/* LEB128 as wk_rbuf_varint: at most 10 bytes, bits past 64 dropped; reads below `end`. 0 or an error. */
__device__ __forceinline__ int read_varint(const uint8_t *p, uint32_t *pos, uint32_t end, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= end) return LE_TRUNC;
        uint32_t b = __ldg(p + (*pos)++);
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return TE_VARINT;
}

/* Finds where the next stored table (u8 lo, u8 hi, hi-lo+1 varints) ends, the whole warp reading 32 bytes at a
 * time and counting varint ends (bytes below 0x80). 0 or an error; the values are checked by expand_table. */
__device__ __forceinline__ int skip_table(const uint8_t *p, uint32_t *pos, uint32_t end, int nsym, int lane) {
    if (end - *pos < 2) return LE_TRUNC;
    uint32_t q = *pos, at = q + lane;
    uint32_t b = at < end ? __ldg(p + at) : 0x80u; /* past the layer: no varint ends there */
    int lo = __shfl_sync(0xFFFFFFFFu, (int)b, 0), hi = __shfl_sync(0xFFFFFFFFu, (int)b, 1);
    if (lo > hi || hi >= nsym) return TE_RANGE;
    int k = hi - lo + 1;
    unsigned ends = __ballot_sync(0xFFFFFFFFu, lane >= 2 && !(b & 0x80));
    for (;;) {
        int n = __popc(ends);
        if (n >= k) { /* the lane holding the k-th end */
            unsigned upto = lane == 31 ? 0xFFFFFFFFu : (2u << lane) - 1;
            unsigned hit = __ballot_sync(0xFFFFFFFFu, ((ends >> lane) & 1) && __popc(ends & upto) == k);
            *pos = q + (uint32_t)(__ffs((int)hit) - 1) + 1;
            return 0;
        }
        k -= n;
        q += 32;
        if (q >= end) return LE_TRUNC;
        at = q + lane;
        b = at < end ? __ldg(p + at) : 0x80u;
        ends = __ballot_sync(0xFFFFFFFFu, !(b & 0x80));
    }
}

/* One warp per (chunk, layer): follows the layer byte counts to its layer, checks its parts fit, records where
 * its scales, tables and streams are. Checks what cachegen.c's decoder checks of the layout. */
__global__ void cg_layout_kernel(const cg_layer *__restrict__ cls, uint32_t cl0, uint32_t ncl,
                                 const uint8_t *__restrict__ in, int H, int D, cg_out o) {
    const uint32_t lw = (uint32_t)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32), w = cl0 + lw;
    const int lane = (int)(threadIdx.x & 31);
    if (lw >= ncl) return;
    const cg_layer c = cls[w];
    const uint8_t *p = in + c.base;
    uint32_t pos = WK_CG_HEADER_BYTES, end = 0, at = 0;
    int e = 0;
    for (uint32_t j = 0;; j++) { /* layer sizes of the layers before */
        if (c.len - pos < 4) {
            e = j == c.li ? LE_TRUNC : LE_EARLIER;
            break;
        }
        uint32_t size = load_u32(p + pos);
        if (size > c.len - pos - 4) {
            e = j == c.li ? LE_SIZE : LE_EARLIER;
            break;
        }
        if (j == c.li) {
            end = pos + 4 + size;
            pos += 4;
            break;
        }
        pos += 4 + size;
    }
    at = pos;
    if (!e && end - pos < 4 * (uint32_t)c.ntokens) e = LE_TRUNC;
    if (!e) {
        if (lane == 0) o.lay_pos[w] = pos;
        pos += 4 * (uint32_t)c.ntokens;
    }
    const int C = H * D;
    uint32_t ahead = pos; /* bytes before this are prefetched: the walk is one dependent load after another */
    for (int kv = 0; kv < 2 && !e; kv++)
        for (int t = 0; t < C && !e; t++) {
            if (ahead < end && (int)(ahead - pos) < 2048) { /* keep 2-4 KB ahead, a 128-byte line per lane */
                if (ahead + 128 * (uint32_t)lane < end) prefetch_l2(p + ahead + 128 * (uint32_t)lane);
                ahead += 4096;
            }
            at = pos;
            e = skip_table(p, &pos, end, c.nsym[kv], lane);
            if (!e && lane == 0) o.tab_at[c.table0 + (uint32_t)(kv * C + t)] = at;
        }
    if (!e && lane == 0) { /* stream lengths, then the streams fill the layer exactly */
        const int ns = 2 * H * c.ng;
        const uint32_t lens_at = pos;
        uint64_t total = 0, l;
        at = lens_at;
        for (int i = 0; i < ns && !e; i++) {
            e = read_varint(p, &pos, end, &l);
            if (e == TE_VARINT) e = LE_VARINT;
            if (!e && l > c.len) e = LE_LENGTH;
            total += e ? 0 : l;
        }
        if (!e && total != end - pos) e = LE_STREAMS;
        for (uint32_t i = 0, lp = lens_at, sp = pos; i < (uint32_t)ns && !e; i++) {
            (void)read_varint(p, &lp, end, &l); /* again, now that they are known to be good */
            o.str_at[c.stream0 + i] = sp;
            o.str_len[c.stream0 + i] = (uint32_t)l;
            sp += (uint32_t)l;
        }
        if (!e && c.last && end != c.len) {
            e = LE_TRAILING;
            at = end;
        }
    }
    e = __shfl_sync(0xFFFFFFFFu, e, 0);
    at = __shfl_sync(0xFFFFFFFFu, at, 0);
    if (lane == 0) {
        o.cl_err[w] = e;
        o.cl_at[w] = at;
        if (e) atomicOr(o.flag, 1);
    }
}

/* One stored table at p (rangecoder.h format) into cum [nsym + 1], with wk_rc_table_read's checks. */
template <typename C>
__device__ int expand_table(const uint8_t *p, uint32_t pos, uint32_t end, int nsym, int tb, C *cum) {
    if (end - pos < 2) return LE_TRUNC;
    int lo = __ldg(p + pos), hi = __ldg(p + pos + 1);
    pos += 2;
    if (lo > hi || hi >= nsym) return TE_RANGE;
    const uint64_t total = 1ull << tb;
    uint64_t sum = 0;
    cum[0] = 0;
    for (int s = 0; s < nsym; s++) {
        uint64_t f = 0;
        if (s >= lo && s <= hi) {
            int e = read_varint(p, &pos, end, &f);
            if (e) return e;
        }
        if (f > total || (sum += f) > total) return TE_PAST;
        cum[s + 1] = (C)sum;
    }
    return sum == total ? 0 : TE_SUM;
}

/* Decodes one stream: channels [d0, d1) of one head, token-major, with its tables at tab, stride entries apart. */
template <typename C>
__device__ int cg_stream_decode(const uint8_t *sp, uint32_t len, const uint8_t *scales, const C *tab, size_t stride,
                                const cg_layer &c, const cg_block &b, uint16_t *base, int d0, int d1, int D) {
    rcd d;
    int e = rcd_init(&d, sp, len);
    if (e) return e;
    const int vec8 = d1 - d0 == 8 && D % 8 == 0;
    for (int tt = 0; tt < c.ntokens; tt++) {
        float step = __fdiv_rn(h2f(load_u16(scales + 2 * (size_t)tt)), (float)b.M);
        int rel = c.delta ? tt % c.group : 0;
        uint16_t *x = base + (size_t)(c.token0 + tt) * D;
        const uint16_t *xa = x - (size_t)rel * D;
        const C *t = tab;
        if (vec8) { /* the default layout: 8 channels of a head, one 16-byte store per token */
            half8 out, anc;
            if (rel) anc.v = *(const uint4 *)(xa + d0);
#pragma unroll
            for (int j = 0; j < 8; j++, t += stride) {
                int sym = rcd_get(&d, t, b.nsym, b.top_step, c.tb);
                if (sym < 0) return -sym;
                float q = sym == b.M ? 0.0f : __fmul_rn((float)(sym - b.M), step);
                out.h[j] = f2h(rel ? __fadd_rn(h2f(anc.h[j]), q) : __fadd_rn(0.0f, q));
            }
            *(uint4 *)(x + d0) = out.v;
            continue;
        }
        for (int ch = d0; ch < d1; ch++, t += stride) {
            int sym = rcd_get(&d, t, b.nsym, b.top_step, c.tb);
            if (sym < 0) return -sym;
            float q = sym == b.M ? 0.0f : __fmul_rn((float)(sym - b.M), step);
            x[ch] = f2h(rel ? __fadd_rn(h2f(xa[ch]), q) : __fadd_rn(0.0f, q));
        }
    }
    return d.pos != d.len ? SE_TRAILING : SE_OK;
}

/* Entries from one table to the next in a block's table region: at least nsym + 1, and an odd number of 32-bit
 * words, so that the tables of 32 consecutive streams (stored side by side, see cg_decode_kernel) start in 32
 * different shared-memory banks. */
__host__ __device__ inline int cg_table_pitch(int nsym, int wide) {
    int n = nsym + 1;
    if (wide) return n | 1;
    return (n + 1) / 2 % 2 ? (n + 1) / 2 * 2 : (n + 1) / 2 * 2 + 2;
}

/* A block per cg_block: its threads expand the block's tables from the stored bytes into shared memory (C:
 * uint16 when table_bits < 16), or into global scratch (C = uint32) when they do not fit there (scratch != 0),
 * then one thread per stream decodes. Table of channel j of the block's stream i: slot j * streams + i, pitch
 * entries per slot: the threads of a warp, decoding the same channel of their streams at once, read tables in
 * different banks (one table after another per stream put them 8 channels apart, mostly in the same bank). */
template <typename C>
/* (128, 9): 56 registers, so that 18 blocks of 64 threads fit an SM (level 0's tables, 14 KB a block, allow 15) */
__global__ void __launch_bounds__(128, 9)
    cg_decode_kernel(const cg_block *__restrict__ blocks, uint32_t b0, const cg_layer *__restrict__ cls,
                     const uint8_t *__restrict__ in, uint32_t *scratch, uint32_t scratch_per, cg_out o, uint16_t *k,
                     uint16_t *v, int H, int T, int D) {
    extern __shared__ uint32_t shared_words[];
    const uint32_t bi = b0 + blockIdx.x;
    const cg_block b = blocks[bi];
    if (o.cl_err[b.cl]) return; /* the layout failed: nothing of this layer can be trusted */
    const cg_layer c = cls[b.cl];
    const uint8_t *p = in + c.base;
    C *tabs = scratch ? (C *)(scratch + (size_t)bi * scratch_per) : (C *)shared_words;
    const int pitch = cg_table_pitch(b.nsym, sizeof(C) == 4), C_ = H * D, ns = b.s1 - b.s0;
    const uint32_t nt = b.c1 - b.c0;
    int bad = 0;
    for (uint32_t t = threadIdx.x; t < nt; t += blockDim.x) {
        uint32_t at = o.tab_at[c.table0 + (uint32_t)(b.kv * C_) + b.c0 + t];
        const int ch = (int)(b.c0 + t), d = ch % D, slot = d % c.G * ns + ch / D * c.ng + d / c.G - b.s0;
        int e = expand_table(p, at, c.len, b.nsym, c.tb, tabs + (size_t)slot * pitch);
        if (e) { /* the block's first failing table and its error */
            atomicMin(o.tab_key + bi, t << 8 | (uint32_t)e);
            atomicOr(o.flag, 1);
            bad = 1;
        }
    }
    if (__syncthreads_or(bad)) return;
    const int s = b.s0 + (int)threadIdx.x;
    if (s >= b.s1) return;
    const int h = s / c.ng, g = s % c.ng, d0 = g * c.G, d1 = d0 + c.G < D ? d0 + c.G : D;
    const uint32_t gs = c.stream0 + (uint32_t)(b.kv * H * c.ng + s);
    const uint8_t *scales = p + o.lay_pos[b.cl] + (size_t)b.kv * 2 * c.ntokens;
    uint16_t *base = (b.kv ? v : k) + (((size_t)c.layer * H + h) * T) * D;
    const C *tab = tabs + (size_t)threadIdx.x * pitch;
    int e = cg_stream_decode(p + o.str_at[gs], o.str_len[gs], scales, tab, (size_t)ns * pitch, c, b, base, d0, d1, D);
    o.str_err[gs] = e;
    if (e) atomicOr(o.flag, 1);
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

/* Decodes the n units of one substream (units unit0.. of the call, first.. of its batch) into vals [unit][2][D]
 * (and codes, with delta), level 0 also writing the map's steps. 0 or an SE_* code. CPU reference: decode_units
 * of kv/semantic.c. */
template <typename C>
__device__ int sem_stream_decode(const uint8_t *sp, uint32_t len, const sem_batch_dev *b, const C *tabs,
                                 const uint8_t *__restrict__ in, const uint32_t *__restrict__ ids, uint32_t unit0,
                                 uint32_t first, uint32_t n, const uint16_t *k, const uint16_t *v, float *step,
                                 uint16_t *vals, int8_t *codes, int H, int T, int D) {
    rcd d;
    int e = rcd_init(&d, sp, len);
    if (e) return e;
    const int stride = b->nsym + 1, level = b->level;
    for (uint32_t u = 0; u < n; u++) {
        uint32_t id = ids[unit0 + u];
        int g = (int)(id / ((uint32_t)H * T)) / b->group_layers;
        int M = b->m[g < b->nbins ? g : b->nbins - 1];
        for (int kv = 0; kv < 2; kv++) {
            float step0 = level == 0
                              ? __fdiv_rn(h2f(load_u16(in + b->scale_off + 4 * (size_t)(first + u) + 2 * kv)),
                                          (float)M)
                              : step[2 * (size_t)id + kv];
            float st = ldexpf(step0, -2 * level);
            const uint16_t *cur = (kv ? v : k) + (size_t)id * D;
            size_t at = ((size_t)(unit0 + u) * 2 + kv) * D;
            const C *tab = tabs + (size_t)kv * D * stride;
            if (D % 8 == 0 && !b->delta) { /* 16-byte loads of the previous level and stores of the result */
                for (int c0 = 0; c0 < D; c0 += 8) {
                    half8 prev, out;
                    if (level > 0) prev.v = *(const uint4 *)(cur + c0);
#pragma unroll
                    for (int j = 0; j < 8; j++, tab += stride) {
                        int sym = rcd_get(&d, tab, b->nsym, b->top_step, b->tb);
                        if (sym < 0) return -sym;
                        int q = sym - b->off;
                        if (q < -b->lim || q > b->lim) return SE_CODE;
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
                if (sym < 0) return -sym;
                int q = sym - b->off + (b->delta && u > 0 ? codes[at + c - 2 * (size_t)D] : 0);
                if (q < -b->lim || q > b->lim) return SE_CODE;
                if (b->delta) codes[at + c] = (int8_t)q;
                float x = level == 0 ? round_fp16(q ? __fmul_rn((float)q, step0) : 0.0f)
                                     : round_fp16(__fadd_rn(h2f(cur[c]), q ? __fmul_rn((float)q, st) : 0.0f));
                vals[at + c] = f2h(x);
            }
            if (level == 0) step[2 * (size_t)id + kv] = step0;
        }
    }
    return d.pos != d.len ? SE_TRAILING : SE_OK;
}

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
    errs[i] = sem_stream_decode(in + s.in_off, s.len, batches + s.batch, tabs, in, ids, s.unit0, s.first, s.n, k, v,
                                step, vals, codes, H, T, D);
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

/* ---- semantic on the GPU alone: a block per batch parses and checks it, then a decode as above ----
 * The host reads only the headers. The parse kernel reads ids, scales, tables and substream lengths with the CPU
 * decoder's checks plus two of its own that only send the call to the host path (varints of ids and lengths
 * longer than 5 bytes, which the encoder never writes; a unit in two batches of the call, which the host path
 * decodes in waves); ids are checked against a device copy of the map's levels. Anything off raises the call's
 * flag, and then nothing is committed: the host path (above) decodes the call again and names the error. */

/* What the host knows of a batch from its header. */
typedef struct {
    uint64_t in_off;
    uint32_t len, ids_at, n, unit0, table0; /* table0: its first table [2][D] in the call's table offsets */
} sem_fast_batch;

/* What the parse kernel finds: ok, units per substream, substreams, where they start (relative to the batch). */
typedef struct {
    uint32_t ok, per, nsub, streams_at;
} sem_fast_info;

#define SEMP_THREADS 256

typedef struct {
    long long wsum[SEMP_THREADS / 32];
    int bad;
    uint32_t stop, pos, per;
} semp_shared;

/* Inclusive prefix sum of x over the block (SEMP_THREADS threads); *total: the whole block's sum. */
template <typename V>
__device__ V block_scan(V x, long long *wsum, V *total) {
    const int lane = (int)(threadIdx.x & 31), w = (int)(threadIdx.x >> 5);
    for (int o = 1; o < 32; o <<= 1) {
        V y = __shfl_up_sync(0xFFFFFFFFu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) wsum[w] = (long long)x;
    __syncthreads();
    V before = 0, all = 0;
    for (int i = 0; i < SEMP_THREADS / 32; i++) {
        V s = (V)wsum[i];
        before += i < w ? s : 0;
        all += s;
    }
    __syncthreads();
    *total = all;
    return x + before;
}

/* n LEB128 varints from p[pos, end) read by the whole block, 256 bytes at a time: a byte below 0x80 ends one, its
 * thread gathers it backwards (at most 5 bytes, else bad: the CPU reads up to 10, the host path then does).
 * val = xform(z, &bad); emit(index, val, inclusive sum of vals) may set bad. Returns bad (the block's); *stop:
 * the position after the last, *sum: the sum of all. Every thread gets the same results. */
template <typename X, typename E>
__device__ int block_varints(const uint8_t *__restrict__ p, uint32_t pos, uint32_t end, uint32_t n, semp_shared *sm,
                             X xform, E emit, uint32_t *stop, long long *sum) {
    const uint32_t start = pos;
    uint32_t count = 0;
    long long carry = 0;
    int bad = 0;
    if (threadIdx.x == 0) {
        sm->bad = 0;
        sm->stop = 0;
    }
    __syncthreads();
    while (count < n) {
        if (pos >= end) { /* uniform: pos and count are the block's */
            bad = 1;
            break;
        }
        const uint32_t at = pos + threadIdx.x, b = at < end ? __ldg(p + at) : 0x80u;
        const int is_end = b < 0x80;
        int ends;
        const uint32_t idx = count + (uint32_t)(block_scan<int>(is_end, sm->wsum, &ends) - is_end);
        const int mine = is_end && idx < n;
        long long val = 0;
        if (mine) {
            uint64_t z = b;
            for (uint32_t q = at, nb = 1; q > start && __ldg(p + q - 1) >= 0x80; nb++) {
                if (nb == 5) {
                    bad = 1;
                    break;
                }
                z = z << 7 | (__ldg(p + --q) & 0x7Fu);
            }
            val = xform(z, &bad);
        }
        long long tot;
        const long long incl = block_scan<long long>(val, sm->wsum, &tot);
        if (mine) {
            bad |= emit(idx, val, carry + incl);
            if (idx == n - 1) sm->stop = at + 1;
        }
        carry += tot;
        count += (uint32_t)ends;
        pos += SEMP_THREADS;
    }
    if (bad) sm->bad = 1;
    __syncthreads();
    *stop = sm->stop;
    *sum = carry;
    bad = sm->bad;
    __syncthreads();
    return bad;
}

/* One block (SEMP_THREADS) per batch. Writes the batch's ids, new levels, scale offset, expanded tables, substream
 * offsets and lengths, and info (ok = 1 when everything checked out; else the call's flag is raised). */
__global__ void __launch_bounds__(SEMP_THREADS)
    sem_parse_kernel(const sem_fast_batch *__restrict__ fbs, uint32_t b0, sem_batch_dev *batches,
                     const uint8_t *__restrict__ in, uint32_t units, const uint8_t *__restrict__ level_map,
                     uint32_t *stamp, uint32_t call_no, uint32_t *ids, uint8_t *new_level, uint32_t *tab_at,
                     uint32_t *cum, uint32_t *str_at, uint32_t *str_len, sem_fast_info *info, int D, int *flag) {
    __shared__ semp_shared sm;
    const uint32_t bi = b0 + blockIdx.x;
    const sem_fast_batch f = fbs[bi];
    sem_batch_dev *b = batches + bi;
    const int level = b->level, nsym = b->nsym, tb = b->tb;
    const uint8_t *p = in + f.in_off;
    /* unit ids: zigzag deltas summed; in range, at this batch's level in the map, in no other batch of the call */
    auto id_of = [](uint64_t z, int *bad) -> long long {
        if (z > 2ull * UINT32_MAX) *bad = 1;
        return z & 1 ? -(long long)((z >> 1) + 1) : (long long)(z >> 1);
    };
    auto check_id = [&](uint32_t i, long long, long long id) -> int {
        if (id < 0 || id >= (long long)units) return 1;
        ids[f.unit0 + i] = (uint32_t)id;
        new_level[f.unit0 + i] = (uint8_t)(level + 1);
        return level_map[id] != level || atomicExch(stamp + id, call_no) == call_no;
    };
    uint32_t pos;
    long long sum;
    int bad = block_varints(p, f.ids_at, f.len, f.n, &sm, id_of, check_id, &pos, &sum);
    if (!bad && level == 0) { /* scales */
        if (f.len - pos < 4 * f.n) bad = 1;
        else {
            b->scale_off = f.in_off + pos;
            pos += 4 * f.n;
        }
    }
    /* tables: warp 0 finds where each starts (one after another), then every thread expands some */
    const int ntab = 2 * D;
    if (!bad && threadIdx.x < 32) {
        const int lane = (int)threadIdx.x;
        int e = 0;
        uint32_t ahead = pos;
        for (int t = 0; t < ntab && !e; t++) {
            if (ahead < f.len && (int)(ahead - pos) < 2048) { /* 2-4 KB ahead, as the CacheGen layout */
                if (ahead + 128 * (uint32_t)lane < f.len) prefetch_l2(p + ahead + 128 * (uint32_t)lane);
                ahead += 4096;
            }
            if (lane == 0) tab_at[f.table0 + t] = pos;
            e = skip_table(p, &pos, f.len, nsym, lane);
        }
        if (lane == 0) {
            sm.bad = e != 0;
            sm.pos = pos;
        }
    }
    __syncthreads();
    if (!bad) {
        bad = sm.bad;
        pos = sm.pos;
    }
    for (int t = (int)threadIdx.x; !bad && t < ntab; t += blockDim.x)
        if (expand_table(p, tab_at[f.table0 + t], f.len, nsym, tb, cum + b->cum_off + (size_t)t * (nsym + 1)))
            sm.bad = 1; /* benign race: every writer writes 1 */
    __syncthreads();
    bad = bad || sm.bad;
    /* units per substream, then the substream lengths, which fill the rest of the batch */
    if (!bad && threadIdx.x == 0) {
        uint64_t per = 0;
        int e = read_varint(p, &pos, f.len, &per);
        sm.bad = e || per < 1 || per > f.n;
        sm.per = (uint32_t)per;
        sm.pos = pos;
    }
    __syncthreads();
    if (!bad) {
        bad = sm.bad;
        pos = sm.pos;
    }
    const uint32_t per = bad ? 1 : sm.per, nsub = bad ? 0 : (f.n + per - 1) / per;
    __syncthreads();
    auto length = [](uint64_t z, int *) -> long long { return (long long)z; };
    auto place = [&](uint32_t j, long long l, long long end) -> int {
        str_at[f.unit0 + j] = (uint32_t)(end - l);
        str_len[f.unit0 + j] = (uint32_t)l;
        return l > (long long)f.len;
    };
    uint32_t streams_at = 0;
    if (!bad) bad = block_varints(p, pos, f.len, nsub, &sm, length, place, &streams_at, &sum);
    if (!bad && sum != (long long)(f.len - streams_at)) bad = 1;
    if (threadIdx.x == 0) {
        sem_fast_info r = {(uint32_t)!bad, per, nsub, streams_at};
        info[bi] = r;
        if (bad) atomicOr(flag, 1);
    }
}

/* Blocks (batch, y): the batch's tables staged as in sem_kernel, then its substreams y * blockDim.x + thread,
 * gridDim.y * blockDim.x apart, one thread each. Batches whose parse failed are skipped (the call is redone). */
template <typename C>
__global__ void sem_fast_kernel(const sem_fast_batch *__restrict__ fbs, uint32_t b0, const sem_fast_info *info,
                                const sem_batch_dev *__restrict__ batches, const uint8_t *__restrict__ in,
                                const uint32_t *__restrict__ cum, int smem, const uint32_t *__restrict__ ids,
                                const uint32_t *__restrict__ str_at, const uint32_t *__restrict__ str_len,
                                const uint16_t *k, const uint16_t *v, float *step, uint16_t *vals, int8_t *codes,
                                int H, int T, int D, int *flag) {
    extern __shared__ uint32_t shared_words[];
    const uint32_t bi = b0 + blockIdx.x;
    const sem_fast_info r = info[bi];
    if (!r.ok) return; /* uniform: written by the parse kernel before this one */
    const sem_fast_batch f = fbs[bi];
    const sem_batch_dev *b = batches + bi;
    const tab_block tb = {0, 0, b->cum_off, (uint32_t)(2 * D * (b->nsym + 1))};
    const C *tabs = block_tables<C>(tb, cum, smem, (C *)shared_words);
    for (uint32_t j = blockIdx.y * blockDim.x + threadIdx.x; j < r.nsub; j += gridDim.y * blockDim.x) {
        const uint32_t first = j * r.per, n = f.n - first < r.per ? f.n - first : r.per, s = f.unit0 + j;
        int e = sem_stream_decode(in + f.in_off + r.streams_at + str_at[s], str_len[s], b, tabs, in, ids,
                                  f.unit0 + first, first, n, k, v, step, vals, codes, H, T, D);
        if (e) atomicOr(flag, 1);
    }
}

/* When no batch of the call raised the flag: vals [n][2][D] -> the k, v rows of ids[n], and their new levels.
 * One thread per 8 values (D % 8 == 0, 16-byte accesses) or per value. */
__global__ void sem_fast_commit(const uint32_t *__restrict__ ids, const uint16_t *__restrict__ vals,
                                const uint8_t *__restrict__ new_level, size_t n, int D, uint16_t *k, uint16_t *v,
                                uint8_t *level_map, const int *flag) {
    if (*flag) return;
    const int w = D % 8 ? 1 : 8;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, per = 2 * (size_t)D / w;
    if (i >= n * per) return;
    const size_t unit = i / per, j = i % per, c = j * w % D;
    const int kv = (int)(j * w / D);
    const size_t dst = (size_t)ids[unit] * D + c, src = unit * 2 * D + (size_t)kv * D + c;
    if (w == 8) *(uint4 *)((kv ? v : k) + dst) = *(const uint4 *)(vals + src);
    else (kv ? v : k)[dst] = vals[src];
    if (j == 0) level_map[ids[unit]] = new_level[unit];
}

/* ---- context ---- */

#define MAX_PARTS 8
enum { MAP_SAME, MAP_HOST, MAP_DEVICE, MAP_RESET }; /* which map levels are current (MAP_RESET: the host's, zero) */
#define DEFAULT_PARTS 4

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
    uint8_t *dlevel;   /* device copy of the map levels [L*H*T], the GPU parse's */
    uint32_t *dstamp;  /* device: last GPU-parsed call that named each unit [L*H*T] */
    uint32_t call_no;  /* the GPU-parsed calls so far (stamps) */
    int map_newer;     /* MAP_*: which copy of the levels is current */
    cudaStream_t stream;
    cudaEvent_t ev0, ev1;
    int parts;                     /* a call's input in this many parts whose copies overlap decoding */
    cudaStream_t part[MAX_PARTS];  /* one stream per part: its copies, then its kernels */
    cudaEvent_t part_done[MAX_PARTS], ev_ready, ev_copy0, ev_layout;
    dbuf in, cum, desc, blocks, batches, ids, vals, codes, errs;
    dbuf export_ids; /* ids of a wk_kv_cuda_export_ids call */
    dbuf cg_cls, cg_blocks, cg_lay_pos, cg_cl_err, cg_cl_at, cg_tab_at, cg_tab_key, cg_str_at, cg_str_len, cg_str_err;
    dbuf flag, scratch;
    dbuf sem_fb, sem_info, sem_tab_at, sem_str_at, sem_str_len, sem_new_level; /* the GPU-parsed semantic path */
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
    g->parts = DEFAULT_PARTS;
    if (!rc) OPEN_CK(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev0));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev1));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev_ready));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev_copy0));
    if (!rc) OPEN_CK(cudaEventCreate(&g->ev_layout));
    for (int p = 0; p < MAX_PARTS; p++) {
        if (!rc) OPEN_CK(cudaStreamCreateWithFlags(&g->part[p], cudaStreamNonBlocking));
        if (!rc) OPEN_CK(cudaEventCreateWithFlags(&g->part_done[p], cudaEventDisableTiming));
    }
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->k, g->elems * 2));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->v, g->elems * 2));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->step, units * 2 * sizeof(float)));
    if (!rc) OPEN_CK(cudaMemset(g->k, 0, g->elems * 2));
    if (!rc) OPEN_CK(cudaMemset(g->v, 0, g->elems * 2));
    if (!rc) OPEN_CK(cudaMemset(g->step, 0, units * 2 * sizeof(float)));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->dlevel, units));
    if (!rc) OPEN_CK(cudaMalloc((void **)&g->dstamp, units * sizeof(uint32_t)));
    if (!rc) OPEN_CK(cudaMemset(g->dlevel, 0, units));
    if (!rc) OPEN_CK(cudaMemset(g->dstamp, 0, units * sizeof(uint32_t)));
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
    dbuf *bufs[] = {&g->in,         &g->cum,       &g->desc,      &g->blocks,     &g->batches,   &g->ids,
                    &g->vals,       &g->codes,     &g->errs,      &g->cg_cls,     &g->cg_blocks, &g->cg_lay_pos,
                    &g->cg_cl_err,  &g->cg_cl_at,  &g->cg_tab_at, &g->cg_tab_key, &g->cg_str_at, &g->cg_str_len,
                    &g->cg_str_err, &g->flag,      &g->scratch,   &g->export_ids, &g->sem_fb,    &g->sem_info,
                    &g->sem_tab_at, &g->sem_str_at, &g->sem_str_len, &g->sem_new_level};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]->p);
    cudaFree(g->k);
    cudaFree(g->v);
    cudaFree(g->step);
    cudaFree(g->dlevel);
    cudaFree(g->dstamp);
    for (int p = 0; p < MAX_PARTS; p++) {
        if (g->part_done[p]) cudaEventDestroy(g->part_done[p]);
        if (g->part[p]) cudaStreamDestroy(g->part[p]);
    }
    if (g->ev_ready) cudaEventDestroy(g->ev_ready);
    if (g->ev_copy0) cudaEventDestroy(g->ev_copy0);
    if (g->ev_layout) cudaEventDestroy(g->ev_layout);
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
    g->map_newer = MAP_RESET; /* the device copy is zeroed by the next GPU-parsed call */
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

/* Waits for the parts of a call: kernel_s from the first kernel's start (ev0) to the end of the last part,
 * upload_s the first part's copy (ev_copy0 to ev0; with one part, the whole copy). */
static int join_parts(wk_kv_cuda *g, int parts, wk_err *err) {
    for (int p = 0; p < parts; p++) CK(cudaStreamWaitEvent(g->stream, g->part_done[p], 0));
    CK(cudaEventRecord(g->ev1, g->stream));
    CK(cudaEventSynchronize(g->ev1));
    float ms = 0, up = 0;
    CK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
    CK(cudaEventElapsedTime(&up, g->ev_copy0, g->ev0));
    g->last.kernel_s += ms * 1e-3;
    g->last.upload_s += up * 1e-3;
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
    rc = dbuf_fit(&g->in, len, err);
    if (rc) return rc;
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
    /* parts of whole (layer, kv-head) blocks: part q copies blocks [n*q/P, n*(q+1)/P) and decodes them */
    int parts = g->parts < (int)n ? g->parts : (int)n;
    CK(cudaEventRecord(g->ev_ready, g->stream));
    for (int q = 0; q < parts; q++) {
        cudaStream_t st = g->part[q];
        size_t b0 = n * q / parts, b1 = n * (q + 1) / parts, vals = (b1 - b0) * ntokens * g->D;
        CK(cudaStreamWaitEvent(st, g->ev_ready, 0));
        if (q == 0) CK(cudaEventRecord(g->ev_copy0, st));
        CK(cudaMemcpyAsync((uint8_t *)g->in.p + b0 * per, in + b0 * per, (b1 - b0) * per, cudaMemcpyHostToDevice, st));
        if (q == 0) CK(cudaEventRecord(g->ev0, st));
        size_t blocks = (2 * vals + THREADS - 1) / THREADS;
        if (vals)
            kivi_kernel<<<(unsigned)blocks, THREADS, 0, st>>>(s, (const uint8_t *)g->in.p, b0, vals, g->k, g->v);
        CK(cudaGetLastError());
        CK(cudaEventRecord(g->part_done[q], st));
    }
    g->last.in_bytes = len;
    return join_parts(g, parts, err);
}

extern "C" int wk_kv_cuda_set_parts(wk_kv_cuda *g, int parts, wk_err *err) {
    if (parts < 1 || parts > MAX_PARTS)
        return wk_err_set(err, WK_EINVAL, "cuda kv decode: %d parts (1..%d)", parts, MAX_PARTS);
    g->parts = parts;
    return 0;
}

extern "C" int wk_kv_cuda_host_alloc(size_t n, void **p, wk_err *err) {
    *p = NULL;
    cudaError_t ce = cudaHostAlloc(p, n ? n : 1, cudaHostAllocDefault);
    if (ce != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        int code = ce == cudaErrorNoDevice || ce == cudaErrorInsufficientDriver ? WK_EUNSUPPORTED : WK_ENOMEM;
        return wk_err_set(err, code, "cuda kv decode: pinned host buffer of %zu bytes: %s", n, cudaGetErrorString(ce));
    }
    return 0;
}

extern "C" void wk_kv_cuda_host_free(void *p) {
    if (p) cudaFreeHost(p);
}

extern "C" int wk_kv_cuda_h2d_probe(wk_kv_cuda *g, const void *host, size_t n, double *seconds, wk_err *err) {
    int rc = dbuf_fit(&g->in, n, err);
    if (rc) return rc;
    CK(cudaEventRecord(g->ev0, g->stream));
    CK(cudaMemcpyAsync(g->in.p, host, n, cudaMemcpyHostToDevice, g->stream));
    CK(cudaEventRecord(g->ev1, g->stream));
    CK(cudaEventSynchronize(g->ev1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
    *seconds = ms * 1e-3;
    return 0;
}

extern "C" int wk_kv_cuda_kivi(wk_kv_cuda *g, const wk_kivi_params *p, const uint8_t *in, size_t len, wk_err *err) {
    return wk_kv_cuda_kivi_rows(g, p, 0, g->L, 0, g->H, 0, g->T, in, len, err);
}

/* ---- host staging of a semantic call: input bytes, expanded tables, descriptors, launch blocks ---- */

/* Input bytes of the caller copied straight to the uploaded input at base (no host copy). */
typedef struct {
    const uint8_t *p;
    size_t len;
    uint64_t base;
} in_piece;

typedef struct {
    hbuf pieces;         /* in_piece */
    uint64_t in_len;     /* bytes of the uploaded input */
    hbuf cum, desc, blocks;
    size_t max_ncum;     /* largest table region of a block */
    uint32_t max_streams; /* most streams of a block */
    int max_tb;          /* largest table_bits */
} stage;

static void stage_free(stage *s) {
    free(s->pieces.data);
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
    int rc = dbuf_fit(&g->in, st->in_len, err);
    const in_piece *pc = (const in_piece *)st->pieces.data;
    for (size_t i = 0; !rc && i < st->pieces.len / sizeof *pc; i++)
        CK(cudaMemcpyAsync((uint8_t *)g->in.p + pc[i].base, pc[i].p, pc[i].len, cudaMemcpyHostToDevice, g->stream));
    if (!rc) rc = upload(&g->cum, &st->cum, g->stream, err);
    if (!rc) rc = upload(&g->desc, &st->desc, g->stream, err);
    if (!rc) rc = upload(&g->blocks, &st->blocks, g->stream, err);
    if (rc) return rc;
    CK(cudaStreamSynchronize(g->stream));
    g->last.upload_s += now_s() - a;
    return 0;
}

/* ---- CacheGen host side: headers (wk_cg_read_header, the CPU decoder's checks) and descriptors ---- */

/* Streams per launch block: about this many, from whole heads when a head has fewer streams. */
#define CG_BLOCK_STREAMS 64
#define CG_MAX_BLOCK_STREAMS 128

typedef struct {
    hbuf cls, blocks;       /* cg_layer, cg_block */
    uint32_t *chunk_cl0;    /* [n + 1] first cg_layer of each chunk */
    uint32_t *chunk_blk0;   /* [n + 1] first block of each chunk */
    uint64_t *chunk_base;   /* [n] the chunk's offset in the uploaded input */
    uint32_t streams, tables, max_threads;
    size_t max_ncum[2]; /* largest table region (entries) of a block, tables as uint16 / uint32 */
    int wide;        /* some table_bits is 16: tables as uint32 */
} cg_plan;

static void cg_plan_free(cg_plan *pl) {
    free(pl->cls.data);
    free(pl->blocks.data);
    free(pl->chunk_cl0);
    free(pl->chunk_blk0);
    free(pl->chunk_base);
}

static int cg_add_block(cg_plan *pl, const wk_kv_cuda *g, uint32_t cl, const cg_layer *c, int kv, int M, int s0,
                        int s1, wk_err *err) {
    cg_block b;
    b.cl = cl;
    b.kv = kv;
    b.s0 = s0;
    b.s1 = s1;
    b.M = M;
    b.nsym = c->nsym[kv];
    b.top_step = top_step_of(b.nsym);
    int hl = (s1 - 1) / c->ng, gl = (s1 - 1) % c->ng;
    b.c0 = (uint32_t)(s0 / c->ng * g->D + s0 % c->ng * c->G);
    b.c1 = (uint32_t)(hl * g->D + (gl * c->G + c->G < g->D ? gl * c->G + c->G : g->D));
    const size_t slots = (size_t)(c->G < g->D ? c->G : g->D) * (size_t)(s1 - s0); /* see cg_decode_kernel */
    for (int w = 0; w < 2; w++)
        if (slots * cg_table_pitch(b.nsym, w) > pl->max_ncum[w]) pl->max_ncum[w] = slots * cg_table_pitch(b.nsym, w);
    if ((uint32_t)(s1 - s0) > pl->max_threads) pl->max_threads = (uint32_t)(s1 - s0);
    return hbuf_add(&pl->blocks, &b, sizeof b, err);
}

/* Plans one chunk (its bytes at `base` of the uploaded input): a cg_layer per layer, blocks per side. */
static int cg_plan_chunk(cg_plan *pl, const wk_kv_cuda *g, int chunk, const uint8_t *in, size_t len, uint64_t base,
                         wk_err *err) {
    if (len > UINT32_MAX)
        return wk_err_set(err, WK_EINVAL, "cachegen chunk of %zu bytes: the GPU decoder takes up to 4 GiB", len);
    wk_cg_header h;
    int rc = wk_cg_read_header(in, len, g->L, g->H, g->T, g->D, &h, err);
    if (rc) return rc;
    const int G = h.stream_channels, ng = (g->D + G - 1) / G;
    int hb = ng >= CG_BLOCK_STREAMS ? 1 : CG_BLOCK_STREAMS / ng; /* heads per block */
    if (hb > g->H) hb = g->H;
    for (int li = 0; !rc && li < h.nlayers; li++) {
        cg_layer c;
        memset(&c, 0, sizeof c);
        c.base = base;
        c.len = (uint32_t)len;
        c.li = (uint32_t)li;
        c.last = li == h.nlayers - 1;
        c.stream0 = pl->streams;
        c.table0 = pl->tables;
        c.chunk = chunk;
        c.layer = h.layer0 + li;
        c.token0 = (int)h.token0;
        c.ntokens = (int)h.ntokens;
        c.delta = h.delta;
        c.group = h.group;
        c.tb = h.table_bits;
        c.G = G;
        c.ng = ng;
        int M[2];
        for (int kv = 0; kv < 2; kv++) {
            M[kv] = wk_cg_bins(h.level, c.layer, h.layers, kv) / 2 - 1;
            c.nsym[kv] = 2 * M[kv] + 1;
        }
        if ((size_t)pl->streams + 2 * (size_t)g->H * ng > UINT32_MAX ||
            (size_t)pl->tables + 2 * (size_t)g->H * g->D > UINT32_MAX)
            return wk_err_set(err, WK_EINVAL, "cachegen: too many streams in one GPU call");
        uint32_t cl = (uint32_t)(pl->cls.len / sizeof c);
        rc = hbuf_add(&pl->cls, &c, sizeof c, err);
        for (int kv = 0; !rc && kv < 2; kv++)
            for (int h0 = 0; !rc && h0 < g->H;) {
                if (ng <= CG_MAX_BLOCK_STREAMS) { /* whole heads */
                    int h1 = h0 + hb < g->H ? h0 + hb : g->H;
                    rc = cg_add_block(pl, g, cl, &c, kv, M[kv], h0 * ng, h1 * ng, err);
                    h0 = h1;
                    continue;
                }
                for (int g0 = 0; !rc && g0 < ng; g0 += CG_MAX_BLOCK_STREAMS) /* parts of a head */
                    rc = cg_add_block(pl, g, cl, &c, kv, M[kv], h0 * ng + g0,
                                      h0 * ng + (g0 + CG_MAX_BLOCK_STREAMS < ng ? g0 + CG_MAX_BLOCK_STREAMS : ng), err);
                h0++;
            }
        pl->streams += 2 * (uint32_t)g->H * (uint32_t)ng;
        pl->tables += 2 * (uint32_t)g->H * (uint32_t)g->D;
        if (c.tb >= 16) pl->wide = 1;
    }
    return rc;
}

static const char *cg_error(int e) {
    switch (e) {
    case LE_TRUNC: return "truncated (a part of the layer runs past its end)";
    case LE_SIZE: return "layer byte count past the end of the chunk";
    case LE_LENGTH: return "a stream length past the end of the chunk";
    case LE_VARINT: return "a stream length varint longer than 10 bytes";
    case LE_STREAMS: return "the stream lengths do not add up to the rest of the layer";
    case LE_TRAILING: return "trailing bytes after the last layer";
    case LE_EARLIER: return "an earlier layer's byte count is wrong";
    case TE_RANGE: return "symbols outside the alphabet";
    case TE_VARINT: return "varint longer than 10 bytes";
    case TE_PAST: return "frequencies sum past 2^table_bits";
    case TE_SUM: return "frequencies do not sum to 2^table_bits";
    default: return stream_error(e);
    }
}

/* The first error of a failed call, in chunk, layer, table/stream order, as a message. */
static int cg_report(wk_kv_cuda *g, const cg_plan *pl, wk_err *err) {
    const cg_layer *cls = (const cg_layer *)pl->cls.data;
    const cg_block *bl = (const cg_block *)pl->blocks.data;
    size_t ncl = pl->cls.len / sizeof *cls, nb = pl->blocks.len / sizeof *bl;
    int *cl_err = (int *)malloc(sizeof(int) * ncl), *str_err = (int *)malloc(sizeof(int) * pl->streams);
    uint32_t *cl_at = (uint32_t *)malloc(sizeof(uint32_t) * ncl), *tab_key = (uint32_t *)malloc(sizeof(uint32_t) * nb);
    uint32_t *tab_at = (uint32_t *)malloc(sizeof(uint32_t) * pl->tables);
    uint32_t *str_at = (uint32_t *)malloc(sizeof(uint32_t) * pl->streams);
    int rc = 0;
    if (!cl_err || !str_err || !cl_at || !tab_key || !tab_at || !str_at)
        rc = wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory");
    cudaError_t ce = cudaSuccess;
    if (!rc) {
        ce = cudaMemcpy(cl_err, g->cg_cl_err.p, sizeof(int) * ncl, cudaMemcpyDeviceToHost);
        if (ce == cudaSuccess) ce = cudaMemcpy(cl_at, g->cg_cl_at.p, sizeof(uint32_t) * ncl, cudaMemcpyDeviceToHost);
        if (ce == cudaSuccess) ce = cudaMemcpy(tab_key, g->cg_tab_key.p, sizeof(uint32_t) * nb, cudaMemcpyDeviceToHost);
        if (ce == cudaSuccess)
            ce = cudaMemcpy(tab_at, g->cg_tab_at.p, sizeof(uint32_t) * pl->tables, cudaMemcpyDeviceToHost);
        if (ce == cudaSuccess)
            ce = cudaMemcpy(str_err, g->cg_str_err.p, sizeof(int) * pl->streams, cudaMemcpyDeviceToHost);
        if (ce == cudaSuccess)
            ce = cudaMemcpy(str_at, g->cg_str_at.p, sizeof(uint32_t) * pl->streams, cudaMemcpyDeviceToHost);
        if (ce != cudaSuccess) rc = wk_err_set(err, WK_EIO, "cuda kv decode: %s", cudaGetErrorString(ce));
    }
    size_t b = 0;
    for (size_t i = 0; !rc && i < ncl; i++) {
        const cg_layer *c = cls + i;
        if (cl_err[i] && cl_err[i] != LE_EARLIER) {
            rc = wk_err_set(err, WK_EFORMAT, "chunk %d: cachegen chunk: layer %d %sat offset %u: %s", c->chunk,
                            c->layer, cl_err[i] < LE_TRUNC ? "frequency table " : "", cl_at[i], cg_error(cl_err[i]));
            break;
        }
        if (cl_err[i]) continue; /* the earlier layer reports it */
        for (; !rc && b < nb && bl[b].cl == i; b++) {
            if (tab_key[b] == 0xFFFFFFFFu) continue;
            uint32_t ch = bl[b].c0 + (tab_key[b] >> 8), t = c->table0 + (uint32_t)bl[b].kv * g->H * g->D + ch;
            rc = wk_err_set(err, WK_EFORMAT,
                            "chunk %d: cachegen chunk: layer %d %s head %u channel %u: frequency table at offset %u: "
                            "%s",
                            c->chunk, c->layer, bl[b].kv ? "V" : "K", ch / g->D, ch % g->D, tab_at[t],
                            cg_error((int)(tab_key[b] & 0xFF)));
        }
        for (uint32_t s = 0; !rc && s < 2 * (uint32_t)g->H * c->ng; s++) {
            int e = str_err[c->stream0 + s];
            if (!e) continue;
            int kv = (int)(s / ((uint32_t)g->H * c->ng)), h = (int)(s / c->ng % g->H), gi = (int)(s % c->ng);
            rc = wk_err_set(err, WK_EFORMAT,
                            "chunk %d: cachegen chunk: layer %d %s head %d channels %d.. stream at offset %u: %s",
                            c->chunk, c->layer, kv ? "V" : "K", h, gi * c->G, str_at[c->stream0 + s], cg_error(e));
        }
    }
    if (!rc) rc = wk_err_set(err, WK_EFORMAT, "cachegen: the GPU flagged an error that no chunk reports");
    free(cl_err);
    free(str_err);
    free(cl_at);
    free(tab_key);
    free(tab_at);
    free(str_at);
    return rc;
}

/* Parts of a call: chunks [first[p], first[p + 1]) are copied on part stream p while earlier parts decode. */
static int split_parts(const size_t *len, int n, int parts, int *first) {
    size_t total = 0, acc = 0;
    for (int i = 0; i < n; i++) total += len[i];
    if (parts > n) parts = n;
    if (parts < 1) parts = 1;
    int p = 0;
    first[0] = 0;
    for (int i = 0; i < n && p + 1 < parts; i++) {
        acc += len[i];
        if (acc * (size_t)parts >= total * (size_t)(p + 1) && i + 1 < n) first[++p] = i + 1;
    }
    first[p + 1] = n;
    return p + 1;
}

static int cg_fit(wk_kv_cuda *g, const cg_plan *pl, size_t in_len, size_t scratch, wk_err *err) {
    size_t ncl = pl->cls.len / sizeof(cg_layer), nb = pl->blocks.len / sizeof(cg_block);
    int rc = dbuf_fit(&g->in, in_len, err);
    if (!rc) rc = upload(&g->cg_cls, &pl->cls, g->stream, err);
    if (!rc) rc = upload(&g->cg_blocks, &pl->blocks, g->stream, err);
    if (!rc) rc = dbuf_fit(&g->cg_lay_pos, sizeof(uint32_t) * ncl, err);
    if (!rc) rc = dbuf_fit(&g->cg_cl_err, sizeof(int) * ncl, err);
    if (!rc) rc = dbuf_fit(&g->cg_cl_at, sizeof(uint32_t) * ncl, err);
    if (!rc) rc = dbuf_fit(&g->cg_tab_at, sizeof(uint32_t) * pl->tables, err);
    if (!rc) rc = dbuf_fit(&g->cg_tab_key, sizeof(uint32_t) * nb, err);
    if (!rc) rc = dbuf_fit(&g->cg_str_at, sizeof(uint32_t) * pl->streams, err);
    if (!rc) rc = dbuf_fit(&g->cg_str_len, sizeof(uint32_t) * pl->streams, err);
    if (!rc) rc = dbuf_fit(&g->cg_str_err, sizeof(int) * pl->streams, err);
    if (!rc) rc = dbuf_fit(&g->flag, sizeof(int), err);
    if (!rc && scratch) rc = dbuf_fit(&g->scratch, scratch, err);
    if (rc) return rc;
    CK(cudaMemsetAsync(g->cg_tab_key.p, 0xFF, sizeof(uint32_t) * nb, g->stream));
    CK(cudaMemsetAsync(g->flag.p, 0, sizeof(int), g->stream));
    CK(cudaEventRecord(g->ev_ready, g->stream));
    return 0;
}

extern "C" int wk_kv_cuda_cachegen(wk_kv_cuda *g, int n, const uint8_t *const *chunk, const size_t *len,
                                   wk_err *err) {
    memset(&g->last, 0, sizeof g->last);
    if (n < 1) return 0;
    cg_plan pl;
    memset(&pl, 0, sizeof pl);
    double a = now_s();
    pl.chunk_cl0 = (uint32_t *)malloc(sizeof(uint32_t) * ((size_t)n + 1));
    pl.chunk_blk0 = (uint32_t *)malloc(sizeof(uint32_t) * ((size_t)n + 1));
    pl.chunk_base = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)n);
    int rc = 0;
    if (!pl.chunk_cl0 || !pl.chunk_blk0 || !pl.chunk_base)
        rc = wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory");
    uint64_t in_len = 0;
    for (int c = 0; !rc && c < n; c++) {
        pl.chunk_cl0[c] = (uint32_t)(pl.cls.len / sizeof(cg_layer));
        pl.chunk_blk0[c] = (uint32_t)(pl.blocks.len / sizeof(cg_block));
        pl.chunk_base[c] = in_len;
        if (cg_plan_chunk(&pl, g, c, chunk[c], len[c], in_len, err)) rc = wk_err_prefix(err, "chunk %d", c);
        in_len += len[c];
    }
    if (!rc) {
        pl.chunk_cl0[n] = (uint32_t)(pl.cls.len / sizeof(cg_layer));
        pl.chunk_blk0[n] = (uint32_t)(pl.blocks.len / sizeof(cg_block));
    }
    g->last.in_bytes = in_len;
    g->last.streams = (int)pl.streams;
    /* tables in shared memory (uint16 when every table_bits < 16), else in global scratch as uint32 */
    int wide = pl.wide;
    size_t bytes = pl.max_ncum[wide] * (wide ? 4 : 2), scratch = 0;
    uint32_t scratch_per = 0;
    if (bytes > SMEM_MAX) {
        wide = 1;
        scratch_per = (uint32_t)pl.max_ncum[1];
        scratch = pl.blocks.len / sizeof(cg_block) * pl.max_ncum[1] * 4;
        bytes = 0;
    }
    if (!rc) rc = cg_fit(g, &pl, in_len, scratch, err);
    g->last.parse_s = now_s() - a;
    launch_cfg lc = {!scratch, wide, bytes, (pl.max_threads + 31) / 32 * 32, 0};
    if (!rc && wide) rc = allow_smem(cg_decode_kernel<uint32_t>, &lc, err);
    if (!rc && !wide) rc = allow_smem(cg_decode_kernel<uint16_t>, &lc, err);
    int first[MAX_PARTS + 1], parts = rc ? 0 : split_parts(len, n, g->parts, first);
    cg_out o = {(uint32_t *)g->cg_lay_pos.p, (uint32_t *)g->cg_tab_at.p, (uint32_t *)g->cg_str_at.p,
                (uint32_t *)g->cg_str_len.p, (int *)g->cg_cl_err.p,   (uint32_t *)g->cg_cl_at.p,
                (uint32_t *)g->cg_tab_key.p, (int *)g->cg_str_err.p,   (int *)g->flag.p};
    const uint8_t *in = (const uint8_t *)g->in.p;
    for (int p = 0; !rc && p < parts; p++) {
        cudaStream_t s = g->part[p];
        CK(cudaStreamWaitEvent(s, g->ev_ready, 0));
        if (p == 0) CK(cudaEventRecord(g->ev_copy0, s));
        for (int c = first[p]; c < first[p + 1]; c++)
            CK(cudaMemcpyAsync((uint8_t *)g->in.p + pl.chunk_base[c], chunk[c], len[c], cudaMemcpyHostToDevice, s));
        if (p == 0) CK(cudaEventRecord(g->ev0, s));
        uint32_t cl0 = pl.chunk_cl0[first[p]], ncl = pl.chunk_cl0[first[p + 1]] - cl0;
        uint32_t b0 = pl.chunk_blk0[first[p]], nb = pl.chunk_blk0[first[p + 1]] - b0;
        const cg_layer *cls = (const cg_layer *)g->cg_cls.p;
        const cg_block *bl = (const cg_block *)g->cg_blocks.p;
        if (ncl) cg_layout_kernel<<<(ncl + 3) / 4, 128, 0, s>>>(cls, cl0, ncl, in, g->H, g->D, o);
        if (parts == 1) CK(cudaEventRecord(g->ev_layout, s));
        uint32_t *scr = scratch ? (uint32_t *)g->scratch.p : NULL;
        if (nb && wide)
            cg_decode_kernel<uint32_t><<<nb, lc.threads, lc.bytes, s>>>(bl, b0, cls, in, scr, scratch_per, o, g->k,
                                                                         g->v, g->H, g->T, g->D);
        else if (nb)
            cg_decode_kernel<uint16_t><<<nb, lc.threads, lc.bytes, s>>>(bl, b0, cls, in, scr, scratch_per, o, g->k,
                                                                         g->v, g->H, g->T, g->D);
        CK(cudaGetLastError());
        CK(cudaEventRecord(g->part_done[p], s));
    }
    if (!rc) rc = join_parts(g, parts, err);
    float layout_ms = 0;
    if (!rc && parts == 1) CK(cudaEventElapsedTime(&layout_ms, g->ev0, g->ev_layout));
    g->last.layout_s = layout_ms * 1e-3;
    int flag = 0;
    if (!rc) CK(cudaMemcpy(&flag, g->flag.p, sizeof flag, cudaMemcpyDeviceToHost));
    if (!rc && flag) rc = cg_report(g, &pl, err);
    cg_plan_free(&pl);
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

typedef wk_sem_header sem_head;

/* The header, with the CPU decoder's checks (wk_sem_read_header); r is left at the unit ids. */
static int sem_parse_header(wk_rbuf *r, const wk_kv_cuda *g, sem_head *h, wk_err *err) {
    int rc = wk_sem_read_header(r->data, r->len, g->L, g->H, g->T, g->D, h, err);
    if (!rc) r->pos = h->header_bytes;
    return rc;
}

/* Reads the ids, checks them against the map (as read_ids of semantic.c), stages them. *conflict is set
 * (and nothing staged) when a unit was already touched in this wave. The ids are read first and checked in a
 * second pass that prefetches their (random) map entries ahead: the checks are the host's largest cost. */
static int sem_stage_ids(sem_stage *st, wk_kv_cuda *g, wk_rbuf *r, const sem_head *h, int *conflict, wk_err *err) {
    size_t units = (size_t)g->L * g->H * g->T;
    uint32_t first = st->units;
    int rc = hbuf_add(&st->ids, NULL, sizeof(uint32_t) * h->n, err);
    if (rc) return rc;
    uint32_t *ids = (uint32_t *)st->ids.data + first;
    /* pass 1: ids up to the first unreadable one, whose error counts unless an earlier id fails the map */
    wk_err read_err;
    int read_rc = 0;
    int64_t prev = 0;
    uint32_t nread;
    for (nread = 0; nread < h->n; nread++) {
        uint64_t z;
        size_t at = r->pos;
        if (wk_rbuf_varint(r, &z, "unit id", &read_err)) {
            read_rc = WK_EFORMAT;
            break;
        }
        int64_t id = z > UINT32_MAX * 2ull ? -1 : prev + (z & 1 ? -(int64_t)((z >> 1) + 1) : (int64_t)(z >> 1));
        if (id < 0 || (uint64_t)id >= units) {
            read_rc = wk_err_set(&read_err, WK_EFORMAT, "semantic batch: unit %u id at offset %zu out of range",
                                 nread, at);
            break;
        }
        ids[nread] = (uint32_t)id;
        prev = id;
    }
    /* pass 2: the map */
    uint32_t i;
    *conflict = 0;
    for (i = 0; i < nread && !rc; i++) {
        if (i + 16 < nread) {
            __builtin_prefetch(g->wave + ids[i + 16], 1);
            __builtin_prefetch(g->level + ids[i + 16], 1);
        }
        uint32_t id = ids[i];
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
    }
    if (!rc && !*conflict && read_rc) {
        *err = read_err;
        rc = read_rc;
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
    for (int i = 0; i < h->p.nbins; i++)
        if (h->p.bins[i] / 2 - 1 > maxm) maxm = h->p.bins[i] / 2 - 1;
    sem_batch_dev b;
    memset(&b, 0, sizeof b);
    b.level = h->level;
    b.delta = h->delta;
    b.nsym = h->level > 0 ? 5 : h->delta ? 4 * maxm + 1 : 2 * maxm + 1;
    b.off = h->level > 0 ? 2 : h->delta ? 2 * maxm : maxm;
    b.lim = h->level > 0 ? 2 : maxm;
    b.top_step = top_step_of(b.nsym);
    b.tb = h->table_bits;
    b.group_layers = h->p.group_layers;
    b.nbins = h->p.nbins;
    for (int i = 0; i < h->p.nbins; i++) b.m[i] = h->p.bins[i] / 2 - 1;
    b.scale_off = base + r->pos;
    if (h->level == 0 && !wk_rbuf_take(r, (size_t)h->n * 4, "scales", err)) return WK_EFORMAT;
    int rc = stage_tables(&st->s, r, 2 * g->D, b.nsym, h->table_bits, &b.cum_off, err);
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
                   (uint32_t)(2 * g->D * (b.nsym + 1)), h->table_bits, err)) {
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
    st->s.pieces.len = st->s.cum.len = st->s.desc.len = st->s.blocks.len = st->batches.len = st->ids.len = 0;
    st->s.in_len = 0;
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

/* The host-parsed path: decodes the call in waves, naming the first error as the CPU decoder would. */
static int sem_host_path(wk_kv_cuda *g, int n, const uint8_t *const *batch, const size_t *len, wk_err *err) {
    memset(&g->last, 0, sizeof g->last);
    if (g->map_newer == MAP_DEVICE)
        CK(cudaMemcpy(g->level, g->dlevel, (size_t)g->L * g->H * g->T, cudaMemcpyDeviceToHost));
    g->map_newer = MAP_HOST;
    g->last.host_parse = 1;
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
        uint64_t base = st.s.in_len;
        in_piece pc = {batch[c], len[c], base};
        rc = hbuf_add(&st.s.pieces, &pc, sizeof pc, err);
        st.s.in_len += len[c];
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

/* ---- semantic, GPU-parsed (see sem_parse_kernel): the host reads only the headers ---- */

/* Copies batches [c0, c1) to their places in the uploaded input, one copy per run of batches that lie back to back
 * in host memory (a receiver's buffer). */
static int copy_batches(wk_kv_cuda *g, const uint8_t *const *batch, const size_t *len, const sem_fast_batch *fb,
                        int c0, int c1, cudaStream_t s, wk_err *err) {
    for (int c = c0; c < c1;) {
        int e = c + 1;
        size_t bytes = len[c];
        while (e < c1 && batch[e] == batch[e - 1] + len[e - 1]) bytes += len[e++];
        CK(cudaMemcpyAsync((uint8_t *)g->in.p + fb[c].in_off, batch[c], bytes, cudaMemcpyHostToDevice, s));
        c = e;
    }
    return 0;
}

/* The GPU-parsed decode of a call. *redo = 1 when the GPU found anything it does not accept (a malformed batch, a
 * unit in two batches, an id at another level, a varint longer than it reads): then nothing was committed and
 * the host path must decode the call. */
static int sem_gpu_path(wk_kv_cuda *g, int n, const uint8_t *const *batch, const size_t *len, int *redo, wk_err *err) {
    memset(&g->last, 0, sizeof g->last);
    *redo = 1;
    double a = now_s();
    const size_t units = (size_t)g->L * g->H * g->T;
    const int D = g->D, su = wk_sem_defaults(g->L).stream_units;
    hbuf fbh = {NULL, 0, 0}, bdh = {NULL, 0, 0};
    uint64_t in_len = 0, unit_total = 0, cum_total = 0;
    size_t max_ncum = 0;
    int max_tb = 0, rc = 0;
    uint32_t ygrid[MAX_PARTS] = {0};
    for (int c = 0; !rc && c < n; c++) {
        wk_sem_header h;
        wk_err ignored;
        if (len[c] > UINT32_MAX || wk_sem_read_header(batch[c], len[c], g->L, g->H, g->T, D, &h, &ignored) ||
            unit_total + h.n > units)
            break; /* the host path names the error (or decodes units named twice in waves) */
        sem_batch_dev b;
        memset(&b, 0, sizeof b);
        int maxm = 0;
        for (int i = 0; i < h.p.nbins; i++) maxm = h.p.bins[i] / 2 - 1 > maxm ? h.p.bins[i] / 2 - 1 : maxm;
        b.level = h.level;
        b.delta = h.delta;
        b.nsym = h.level > 0 ? 5 : h.delta ? 4 * maxm + 1 : 2 * maxm + 1;
        b.off = h.level > 0 ? 2 : h.delta ? 2 * maxm : maxm;
        b.lim = h.level > 0 ? 2 : maxm;
        b.top_step = top_step_of(b.nsym);
        b.tb = h.table_bits;
        b.group_layers = h.p.group_layers;
        b.nbins = h.p.nbins;
        for (int i = 0; i < h.p.nbins; i++) b.m[i] = h.p.bins[i] / 2 - 1;
        b.cum_off = (uint32_t)cum_total;
        sem_batch_dev *bp = &b;
        sem_fast_batch f = {in_len, (uint32_t)len[c], (uint32_t)h.header_bytes, h.n, (uint32_t)unit_total,
                            (uint32_t)c * 2 * (uint32_t)D};
        rc = hbuf_add(&bdh, bp, sizeof b, err);
        if (!rc) rc = hbuf_add(&fbh, &f, sizeof f, err);
        size_t ncum = (size_t)2 * D * (b.nsym + 1);
        cum_total += ncum;
        max_ncum = ncum > max_ncum ? ncum : max_ncum;
        max_tb = b.tb > max_tb ? b.tb : max_tb;
        unit_total += h.n;
        in_len += len[c];
    }
    if (rc || fbh.len != (size_t)n * sizeof(sem_fast_batch) || cum_total > UINT32_MAX ||
        (size_t)n * 2 * D > UINT32_MAX) {
        free(fbh.data);
        free(bdh.data);
        return rc; /* *redo stays 1 */
    }
    const sem_fast_batch *fb = (const sem_fast_batch *)fbh.data;
    int first[MAX_PARTS + 1], parts = split_parts(len, n, g->parts, first);
    for (int p = 0; p < parts; p++) /* substream blocks of 128 per batch, for the default substream size */
        for (int c = first[p]; c < first[p + 1]; c++) {
            uint32_t y = ((fb[c].n + su - 1) / su + 127) / 128;
            ygrid[p] = y > ygrid[p] ? y : ygrid[p];
        }
    int wide = max_tb >= 16;
    size_t bytes = max_ncum * (wide ? 4 : 2);
    const int smem = bytes <= SMEM_MAX;
    if (!smem) {
        wide = 1;
        bytes = 0;
    }
    launch_cfg lc = {smem, wide, bytes, 128, 0};
    rc = wide ? allow_smem(sem_fast_kernel<uint32_t>, &lc, err) : allow_smem(sem_fast_kernel<uint16_t>, &lc, err);
    const size_t vals = (size_t)unit_total * 2 * D;
    if (!rc) rc = dbuf_fit(&g->in, in_len, err);
    if (!rc) rc = upload(&g->sem_fb, &fbh, g->stream, err);
    if (!rc) rc = upload(&g->batches, &bdh, g->stream, err);
    if (!rc) rc = dbuf_fit(&g->sem_info, sizeof(sem_fast_info) * (size_t)n, err);
    if (!rc) rc = dbuf_fit(&g->sem_tab_at, sizeof(uint32_t) * 2 * D * (size_t)n, err);
    if (!rc) rc = dbuf_fit(&g->cum, sizeof(uint32_t) * cum_total, err);
    if (!rc) rc = dbuf_fit(&g->ids, sizeof(uint32_t) * unit_total, err);
    if (!rc) rc = dbuf_fit(&g->sem_new_level, unit_total, err);
    if (!rc) rc = dbuf_fit(&g->sem_str_at, sizeof(uint32_t) * unit_total, err);
    if (!rc) rc = dbuf_fit(&g->sem_str_len, sizeof(uint32_t) * unit_total, err);
    if (!rc) rc = dbuf_fit(&g->vals, vals * 2, err);
    if (!rc) rc = dbuf_fit(&g->codes, vals, err);
    if (!rc) rc = dbuf_fit(&g->flag, sizeof(int), err);
    free(bdh.data);
    if (rc) {
        free(fbh.data);
        return rc;
    }
#define SEM_CK(call)                                                                                                   \
    do {                                                                                                               \
        cudaError_t ce_ = (call);                                                                                      \
        if (!rc && ce_ != cudaSuccess)                                                                                 \
            rc = wk_err_set(err, WK_EIO, "cuda kv decode: %s: %s (%s:%d)", #call, cudaGetErrorString(ce_), __FILE__, \
                            __LINE__);                                                                                 \
    } while (0)
    if (g->map_newer == MAP_HOST) SEM_CK(cudaMemcpyAsync(g->dlevel, g->level, units, cudaMemcpyHostToDevice, g->stream));
    if (g->map_newer == MAP_RESET) SEM_CK(cudaMemsetAsync(g->dlevel, 0, units, g->stream));
    /* a device copy newer than the host's stays so: the host path must fetch it if this call is refused */
    if (!rc && g->map_newer != MAP_DEVICE) g->map_newer = MAP_SAME;
    if (++g->call_no == 0) { /* stamps wrapped: none may equal a new call's number */
        SEM_CK(cudaMemsetAsync(g->dstamp, 0, units * sizeof(uint32_t), g->stream));
        g->call_no = 1;
    }
    SEM_CK(cudaMemsetAsync(g->flag.p, 0, sizeof(int), g->stream));
    SEM_CK(cudaEventRecord(g->ev_ready, g->stream));
    g->last.parse_s = now_s() - a;
    const sem_fast_batch *dfb = (const sem_fast_batch *)g->sem_fb.p;
    sem_batch_dev *dbd = (sem_batch_dev *)g->batches.p;
    sem_fast_info *info = (sem_fast_info *)g->sem_info.p;
    const uint8_t *in = (const uint8_t *)g->in.p;
    uint32_t *ids = (uint32_t *)g->ids.p, *cum = (uint32_t *)g->cum.p;
    uint32_t *str_at = (uint32_t *)g->sem_str_at.p, *str_len = (uint32_t *)g->sem_str_len.p;
    int *flag = (int *)g->flag.p;
    for (int p = 0; !rc && p < parts; p++) {
        cudaStream_t s = g->part[p];
        const uint32_t b0 = (uint32_t)first[p], nb = (uint32_t)(first[p + 1] - first[p]);
        SEM_CK(cudaStreamWaitEvent(s, g->ev_ready, 0));
        if (p == 0) SEM_CK(cudaEventRecord(g->ev_copy0, s));
        if (!rc) rc = copy_batches(g, batch, len, fb, first[p], first[p + 1], s, err);
        if (p == 0) SEM_CK(cudaEventRecord(g->ev0, s));
        if (rc) break;
        sem_parse_kernel<<<nb, SEMP_THREADS, 0, s>>>(dfb, b0, dbd, in, (uint32_t)units, g->dlevel, g->dstamp,
                                                     g->call_no, ids, (uint8_t *)g->sem_new_level.p,
                                                     (uint32_t *)g->sem_tab_at.p, cum, str_at, str_len, info, D, flag);
        dim3 grid(nb, ygrid[p]);
        if (wide)
            sem_fast_kernel<uint32_t><<<grid, 128, bytes, s>>>(dfb, b0, info, dbd, in, cum, smem, ids, str_at, str_len,
                                                               g->k, g->v, g->step, (uint16_t *)g->vals.p,
                                                               (int8_t *)g->codes.p, g->H, g->T, D, flag);
        else
            sem_fast_kernel<uint16_t><<<grid, 128, bytes, s>>>(dfb, b0, info, dbd, in, cum, smem, ids, str_at, str_len,
                                                               g->k, g->v, g->step, (uint16_t *)g->vals.p,
                                                               (int8_t *)g->codes.p, g->H, g->T, D, flag);
        SEM_CK(cudaGetLastError());
    }
    for (int p = 0; p < parts; p++) SEM_CK(cudaEventRecord(g->part_done[p], g->part[p]));
    free(fbh.data);
    for (int p = 0; p < parts; p++) SEM_CK(cudaStreamWaitEvent(g->stream, g->part_done[p], 0));
    const size_t threads = unit_total * 2 * D / (D % 8 ? 1 : 8);
    if (!rc && threads)
        sem_fast_commit<<<(unsigned)((threads + 255) / 256), 256, 0, g->stream>>>(
            ids, (const uint16_t *)g->vals.p, (const uint8_t *)g->sem_new_level.p, unit_total, D, g->k, g->v,
            g->dlevel, flag);
    SEM_CK(cudaGetLastError());
    int bad = 1;
    sem_fast_info *got = (sem_fast_info *)malloc(sizeof(sem_fast_info) * (size_t)n); /* for the streams count */
    if (!got && !rc) rc = wk_err_set(err, WK_ENOMEM, "cuda kv decode: out of memory");
    SEM_CK(cudaMemcpyAsync(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost, g->stream));
    if (got) SEM_CK(cudaMemcpyAsync(got, info, sizeof(sem_fast_info) * (size_t)n, cudaMemcpyDeviceToHost, g->stream));
    SEM_CK(cudaEventRecord(g->ev1, g->stream));
    SEM_CK(cudaEventSynchronize(g->ev1));
    float ms = 0, up = 0;
    SEM_CK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
    SEM_CK(cudaEventElapsedTime(&up, g->ev_copy0, g->ev0));
#undef SEM_CK
    for (int c = 0; !rc && c < n; c++) g->last.streams += (int)got[c].nsub;
    free(got);
    if (rc) return rc;
    g->last.kernel_s = ms * 1e-3;
    g->last.upload_s = up * 1e-3;
    g->last.in_bytes = in_len;
    if (bad) return 0;
    *redo = 0;
    g->last.host_parse = 0;
    g->map_newer = MAP_DEVICE;
    return 0;
}

extern "C" int wk_kv_cuda_semantic(wk_kv_cuda *g, int n, const uint8_t *const *batch, const size_t *len,
                                   wk_err *err) {
    if (n < 1) {
        memset(&g->last, 0, sizeof g->last);
        return 0;
    }
    int redo = 1, rc = sem_gpu_path(g, n, batch, len, &redo, err);
    if (rc || !redo) return rc;
    return sem_host_path(g, n, batch, len, err);
}
