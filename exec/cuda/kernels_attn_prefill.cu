/* Flash-style prefill attention on the tensor cores (fp16 in, fp32 accumulate): a block owns a tile
 * of query rows of one head and walks the cache in 64-key tiles with an online softmax, so no (rows x
 * keys) score matrix is ever stored: memory stays O(tile) at any context length. The mma.sync kernel
 * (4 warps of 16 rows; head_dim 64) and the Hopper (wgmma) kernel, warpgroups of 64 rows (head_dim
 * 128), or the one WIKV_CUDA_ATTN_PREFILL names (kernels.cuh). Presence
 * rules as in exec/engine.h; CPU reference: attend() in exec/cpu/engine_cpu.c. */
#include <string.h>

#include "exec/cuda/kernels.cuh"
#include "exec/cuda/mma.cuh"
#include "exec/cuda/wgmma.cuh"

__device__ static inline int window_lo(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

/* grid (ceil(n_rows / 64), n_heads), block 128 = 4 warps of 16 query rows. Thread (g = lane / 4,
 * t = lane % 4) holds rows g and g + 8 of its warp's 16 (the mma accumulator layout): S columns
 * 2t, 2t+1 of each 8-key n-tile, O columns 2t, 2t+1 of each 8-wide slice of head_dim. The S
 * accumulators are re-packed as the A operand of P.V without leaving registers. K/V tiles are
 * double-buffered with cp.async: the next tile streams in while the tensor cores work on this one.
 * Dynamic smem: 2 x (K, V) tiles of [64][HD + 8] fp16 and 2 x 64 presence bytes. */
template <int HD>
__global__ __launch_bounds__(128) void attn_prefill_kernel(wk_cu_attn_args a) {
    constexpr int BQ = 64, BK = 64, LD = HD + 8, KS = HD / 16, NT = HD / 8, SN = BK / 8;
    extern __shared__ __align__(16) unsigned char smem[];
    __half *Kb = reinterpret_cast<__half *>(smem);     /* [2][BK][LD], +8 pad: conflict-free fragments */
    __half *Vb = Kb + 2 * BK * LD;                      /* [2][BK][LD] */
    uint8_t *Pb = reinterpret_cast<uint8_t *>(Vb + 2 * BK * LD); /* [2][BK] */
    int qt = gridDim.x - 1 - blockIdx.x; /* longest (latest) query tiles first */
    int h = blockIdx.y, kvh = h / (a.n_heads / a.n_kv);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane >> 2, tq = lane & 3;
    int q0 = qt * BQ, rw = q0 + warp * 16, ra = rw + gq, rb = ra + 8, qd = a.n_heads * HD;
    uint32_t qf[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        int c = h * HD + kk * 16 + 2 * tq;
        qf[kk][0] = ra < a.n_rows ? ld32(a.q + (size_t)ra * qd + c) : 0u;
        qf[kk][1] = rb < a.n_rows ? ld32(a.q + (size_t)rb * qd + c) : 0u;
        qf[kk][2] = ra < a.n_rows ? ld32(a.q + (size_t)ra * qd + c + 8) : 0u;
        qf[kk][3] = rb < a.n_rows ? ld32(a.q + (size_t)rb * qd + c + 8) : 0u;
    }
    float o[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    int last_row = min(q0 + BQ, a.n_rows) - 1;
    int kstart = window_lo(a.pos0 + q0, a.window) / BK * BK, kend = a.pos0 + last_row + 1;
    int pa = a.pos0 + ra, pb = a.pos0 + rb, loa = window_lo(pa, a.window), lob = window_lo(pb, a.window);
    int warp_last_pos = a.pos0 + rw + 15;
    const __half *Kg = a.k + (size_t)kvh * a.cap * HD, *Vg = a.v + (size_t)kvh * a.cap * HD;
    const uint8_t *pres = a.present + (size_t)kvh * a.cap;
    const float sl2 = rsqrtf((float)HD) * LOG2E;
    /* Absent or out-of-range rows are zero-filled: that is ZERO mode's K = V = 0. */
    auto load_tile = [&](int k0, int buf) {
        for (int i = threadIdx.x; i < BK * HD / 8; i += blockDim.x) {
            int row = i / (HD / 8), c = (i % (HD / 8)) * 8, t = k0 + row;
            bool ok = t < kend && pres[t];
            size_t off = ok ? (size_t)t * HD + c : 0;
            cp_async16(Kb + (buf * BK + row) * LD + c, Kg + off, ok ? 16 : 0);
            cp_async16(Vb + (buf * BK + row) * LD + c, Vg + off, ok ? 16 : 0);
        }
        if (threadIdx.x < BK) Pb[buf * BK + threadIdx.x] = k0 + threadIdx.x < kend ? pres[k0 + threadIdx.x] : 0;
        cp_async_commit();
    };
    if (kstart < kend) load_tile(kstart, 0);
    for (int k0 = kstart, it = 0; k0 < kend; k0 += BK, it++) {
        int buf = it & 1;
        if (k0 + BK < kend) {
            load_tile(k0 + BK, buf ^ 1);
            cp_async_wait<1>(); /* this tile landed; the next one may still be in flight */
        } else
            cp_async_wait<0>();
        __syncthreads();
        const __half *Ks = Kb + buf * BK * LD, *Vs = Vb + buf * BK * LD;
        const uint8_t *Ps = Pb + buf * BK;
        if (k0 <= warp_last_pos) { /* else the whole tile is in this warp's causal future */
            float s[SN][4];
#pragma unroll
            for (int nt = 0; nt < SN; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++)
#pragma unroll
                for (int nt = 0; nt < SN; nt += 2) {
                    uint32_t b[4];
                    ldmatrix_x4(b, Ks + ((nt + (lane >> 4)) * 8 + (lane & 7)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
                    mma16816(s[nt], qf[kk], b[0], b[1]);
                    mma16816(s[nt + 1], qf[kk], b[2], b[3]);
                }
            float mxa = -INFINITY, mxb = -INFINITY;
            /* Tiles wholly inside every row's causal window (most of them) skip the position tests. */
            bool inside = k0 + BK - 1 <= a.pos0 + rw && k0 >= window_lo(warp_last_pos, a.window);
            if (inside) {
#pragma unroll
                for (int nt = 0; nt < SN; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        bool vis = a.zero_mode || Ps[nt * 8 + 2 * tq + (e & 1)];
                        s[nt][e] = vis ? s[nt][e] * sl2 : -INFINITY;
                        if (e < 2) mxa = fmaxf(mxa, s[nt][e]);
                        else mxb = fmaxf(mxb, s[nt][e]);
                    }
            } else {
#pragma unroll
                for (int nt = 0; nt < SN; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int kc = nt * 8 + 2 * tq + (e & 1), t = k0 + kc;
                        int pos = e < 2 ? pa : pb, lo = e < 2 ? loa : lob;
                        bool vis = t <= pos && t >= lo && (a.zero_mode || Ps[kc]);
                        s[nt][e] = vis ? s[nt][e] * sl2 : -INFINITY;
                        if (e < 2) mxa = fmaxf(mxa, s[nt][e]);
                        else mxb = fmaxf(mxb, s[nt][e]);
                    }
            }
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));
            float na = fmaxf(m0, mxa), nb = fmaxf(m1, mxb);
            float ua = na == -INFINITY ? 0.0f : na, ub = nb == -INFINITY ? 0.0f : nb; /* all masked: p = 0 */
            float ca = exp2f(m0 - ua), cb = exp2f(m1 - ub);
            m0 = na;
            m1 = nb;
            float suma = 0.0f, sumb = 0.0f;
#pragma unroll
            for (int nt = 0; nt < SN; nt++) {
                s[nt][0] = exp2f(s[nt][0] - ua);
                s[nt][1] = exp2f(s[nt][1] - ua);
                s[nt][2] = exp2f(s[nt][2] - ub);
                s[nt][3] = exp2f(s[nt][3] - ub);
                suma += s[nt][0] + s[nt][1];
                sumb += s[nt][2] + s[nt][3];
            }
            l0 = l0 * ca + suma;
            l1 = l1 * cb + sumb;
#pragma unroll
            for (int i = 0; i < NT; i++) {
                o[i][0] *= ca;
                o[i][1] *= ca;
                o[i][2] *= cb;
                o[i][3] *= cb;
            }
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                uint32_t pf[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                                  pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int nt = 0; nt < NT; nt += 2) {
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, Vs + (kk * 16 + (lane & 15)) * LD + (nt + (lane >> 4)) * 8);
                    mma16816(o[nt], pf, b[0], b[1]);
                    mma16816(o[nt + 1], pf, b[2], b[3]);
                }
            }
        }
        __syncthreads(); /* everyone is done with buf before the next iteration refills it */
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float ia = l0 > 0.0f ? 1.0f / l0 : 0.0f, ib = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int c = h * HD + nt * 8 + 2 * tq;
        if (ra < a.n_rows)
            *reinterpret_cast<__half2 *>(a.out + (size_t)ra * qd + c) = __floats2half2_rn(o[nt][0] * ia, o[nt][1] * ia);
        if (rb < a.n_rows)
            *reinterpret_cast<__half2 *>(a.out + (size_t)rb * qd + c) = __floats2half2_rn(o[nt][2] * ib, o[nt][3] * ib);
    }
}

/* 2^x on the special-function unit (2 ulp; 2^-inf = 0). */
__device__ static inline float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* 16-byte global -> shared copy to a shared address; src_bytes 0 writes zeros. */
__device__ static inline void cp_async16_s(uint32_t dst, const __half *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}

/* Hopper kernel (wgmma). grid (ceil(n_rows / BQ), n_heads), block NWG warpgroups: BQ = 64 NWG query
 * rows of one head, warpgroup w rows 64 w .. 64 w + 63, its warp w' rows 16 w' .. 16 w' + 15 (the
 * wgmma accumulator layout, wgmma.cuh; per thread the same rows and columns as in the mma.sync
 * kernel). Per 64-key tile a warpgroup issues S = Q K^T (64 x 64, hd / 16 wgmmas, Q and K from shared
 * memory), masks and exponentiates S in registers (online softmax in base 2), and issues O += P V
 * (hd / 64 x 4 wgmmas, P from registers, V read transposed from shared memory). Shared memory
 * (dynamic, 1024-aligned, 128B-swizzled slabs of 64 columns): Q [BQ][hd], 3 stages x (K [64][hd],
 * V [64][hd]), 3 x 64 presence bytes. Pipelined: each warpgroup overlaps its softmax with
 * the tensor cores. Per tile j it issues S(j+1) = Q K(j+1)^T and O += P(j) V(j) back to back, waits
 * for S(j+1) only, and exponentiates it while P(j) V(j) still runs; O is rescaled once that product
 * is done. K/V tiles stream through 3 shared-memory stages (tile j+3 is requested once every
 * warpgroup is done with tile j). HP (head pairs): the block's NWG warpgroups take NWG query heads
 * of one KV head (heads blockIdx.y NWG + w; needs a GQA group size divisible by NWG) for the same 64
 * positions instead of NWG x 64 positions of one head: the same K/V reuse, and every warpgroup walks
 * the same number of tiles. */
template <int HD, int NWG, bool HP>
__global__ __launch_bounds__(NWG * 128, 1) void attn_prefill_wgmma_pipe_kernel(wk_cu_attn_args a) {
    constexpr int BQ = HP ? 64 : 64 * NWG, BK = 64, NTH = 128 * NWG, CH = HD / 8, NA = HD / 64, KS = HD / 16, NS = 3;
    constexpr uint32_t Q_BYTES = 64 * NWG * HD * 2, T_BYTES = BK * HD * 2;
    extern __shared__ __align__(16) unsigned char smem[];
    uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem), sQ = (raw + 1023) & ~1023u;
    uint32_t sK = sQ + Q_BYTES, sV = sK + NS * T_BYTES;
    uint8_t *Pb = smem + (sV + NS * T_BYTES - raw);
    int qt = gridDim.x - 1 - blockIdx.x; /* longest (latest) query tiles first */
    int wg = threadIdx.x / 128, warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane >> 2, tq = lane & 3;
    int h = HP ? blockIdx.y * NWG + wg : blockIdx.y, kvh = h / (a.n_heads / a.n_kv);
    int q0 = qt * BQ, rw = q0 + (HP ? warp % 4 : warp) * 16, ra = rw + gq, rb = ra + 8, qd = a.n_heads * HD;
    int last_row = min(q0 + BQ, a.n_rows) - 1;
    int kstart = window_lo(a.pos0 + q0, a.window) / BK * BK, kend = a.pos0 + last_row + 1;
    int pa = a.pos0 + ra, pb = a.pos0 + rb, loa = window_lo(pa, a.window), lob = window_lo(pb, a.window);
    int warp_last_pos = a.pos0 + rw + 15, wg_last_pos = a.pos0 + q0 + (HP ? 0 : 64 * wg) + 63;
    int n_tiles = (kend - kstart + BK - 1) / BK;
    int wg_tiles = min(n_tiles, (wg_last_pos - kstart) / BK + 1); /* the rest is in this warpgroup's future */
    const __half *Kg = a.k + (size_t)kvh * a.cap * HD, *Vg = a.v + (size_t)kvh * a.cap * HD;
    const uint8_t *pres = a.present + (size_t)kvh * a.cap;
    const float sl2 = rsqrtf((float)HD) * LOG2E;
    for (int i = threadIdx.x; i < 64 * NWG * CH; i += NTH) { /* rows past the chunk: zeros */
        int r = i / CH, c = i % CH, w = HP ? r / 64 : 0, rr = HP ? r % 64 : r; /* HP: head blockIdx.y NWG + w */
        bool ok = q0 + rr < a.n_rows;
        size_t src = ok ? (size_t)(q0 + rr) * qd + (HP ? blockIdx.y * NWG + w : h) * HD + c * 8 : 0;
        cp_async16_s(sQ + w * 64 * HD * 2 + swz_off(rr, c, BQ), a.q + src, ok ? 16 : 0);
    }
    /* Tile i into stage i % NS; past the last tile an empty group, so that group i is always tile i.
     * Absent or out-of-range rows are zero-filled: that is ZERO mode's K = V = 0. */
    auto load_tile = [&](int i) {
        int k0 = kstart + i * BK, buf = i % NS;
        if (i < n_tiles) {
            for (int j = threadIdx.x; j < BK * CH; j += NTH) {
                int r = j / CH, c = j % CH, t = k0 + r;
                bool ok = t < kend && pres[t];
                size_t off = ok ? (size_t)t * HD + c * 8 : 0;
                uint32_t d = buf * T_BYTES + swz_off(r, c, BK);
                cp_async16_s(sK + d, Kg + off, ok ? 16 : 0);
                cp_async16_s(sV + d, Vg + off, ok ? 16 : 0);
            }
            if (threadIdx.x < BK) Pb[buf * BK + threadIdx.x] = k0 + threadIdx.x < kend ? pres[k0 + threadIdx.x] : 0;
        }
        cp_async_commit();
    };
    float o[NA][32], s[32];
    uint32_t pf[4][4];
#pragma unroll
    for (int n = 0; n < NA; n++)
#pragma unroll
        for (int i = 0; i < 32; i++) o[n][i] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* m in units of log2 */
    auto issue_s = [&](int i) {
        uint32_t st = (i % NS) * T_BYTES;
#pragma unroll
        for (int e = 0; e < 32; e++) s[e] = 0.0f;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < KS; kk++)
            wgmma_64x64x16_ss(s, wgmma_desc(sQ + (HP ? wg * 64 * HD * 2 : wg * 64 * 128) + (kk >> 2) * BQ * 128 + (kk & 3) * 32),
                              wgmma_desc(sK + st + (kk >> 2) * BK * 128 + (kk & 3) * 32), kk > 0);
        wgmma_commit();
    };
    auto issue_pv = [&](int i) {
        uint32_t st = (i % NS) * T_BYTES;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int n = 0; n < NA; n++) wgmma_64x64x16_rs_mn(o[n], pf[kk], wgmma_desc(sV + st + n * BK * 128 + kk * 16 * 128));
        wgmma_commit();
    };
    /* s (tile i's scores) -> p in place; returns the factors by which O must be rescaled. */
    auto softmax = [&](int i, float &ca, float &cb) {
#pragma unroll
        for (int e = 0; e < 32; e++) reg_fence(s[e]);
        int k0 = kstart + i * BK;
        const uint8_t *Ps = Pb + (i % NS) * BK;
        float mxa = -INFINITY, mxb = -INFINITY;
        /* Tiles wholly inside every row's causal window (most of them) skip the position tests. */
        bool inside = k0 + BK - 1 <= a.pos0 + rw && k0 >= window_lo(warp_last_pos, a.window);
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int kc = nt * 8 + 2 * tq + (e & 1), t = k0 + kc;
                int pos = e < 2 ? pa : pb, lo = e < 2 ? loa : lob;
                bool vis = (inside || (t <= pos && t >= lo)) && (a.zero_mode || Ps[kc]);
                s[nt * 4 + e] = vis ? s[nt * 4 + e] : -INFINITY;
                if (e < 2) mxa = fmaxf(mxa, s[nt * 4 + e]);
                else mxb = fmaxf(mxb, s[nt * 4 + e]);
            }
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));
        float na = fmaxf(m0, mxa * sl2), nb = fmaxf(m1, mxb * sl2);
        float ua = na == -INFINITY ? 0.0f : na, ub = nb == -INFINITY ? 0.0f : nb; /* all masked: p = 0 */
        ca = ex2(m0 - ua);
        cb = ex2(m1 - ub);
        m0 = na;
        m1 = nb;
        float suma = 0.0f, sumb = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            s[nt * 4 + 0] = ex2(fmaf(s[nt * 4 + 0], sl2, -ua));
            s[nt * 4 + 1] = ex2(fmaf(s[nt * 4 + 1], sl2, -ua));
            s[nt * 4 + 2] = ex2(fmaf(s[nt * 4 + 2], sl2, -ub));
            s[nt * 4 + 3] = ex2(fmaf(s[nt * 4 + 3], sl2, -ub));
            suma += s[nt * 4 + 0] + s[nt * 4 + 1];
            sumb += s[nt * 4 + 2] + s[nt * 4 + 3];
        }
        l0 = l0 * ca + suma;
        l1 = l1 * cb + sumb;
    };
    /* After O's product is done: O *= c, and P (fp16 A fragments) from p. */
    auto rescale_and_pack = [&](float ca, float cb) {
#pragma unroll
        for (int n = 0; n < NA; n++)
#pragma unroll
            for (int i = 0; i < 32; i += 4) {
                reg_fence(o[n][i]);
                reg_fence(o[n][i + 1]);
                reg_fence(o[n][i + 2]);
                reg_fence(o[n][i + 3]);
                o[n][i] *= ca;
                o[n][i + 1] *= ca;
                o[n][i + 2] *= cb;
                o[n][i + 3] *= cb;
            }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
#pragma unroll
            for (int e = 0; e < 4; e++) asm volatile("" : "+r"(pf[kk][e])::"memory"); /* P(j) stays live until here */
            pf[kk][0] = pack_half2(s[8 * kk + 0], s[8 * kk + 1]);
            pf[kk][1] = pack_half2(s[8 * kk + 2], s[8 * kk + 3]);
            pf[kk][2] = pack_half2(s[8 * kk + 4], s[8 * kk + 5]);
            pf[kk][3] = pack_half2(s[8 * kk + 6], s[8 * kk + 7]);
        }
    };
#pragma unroll
    for (int kk = 0; kk < 4; kk++) pf[kk][0] = pf[kk][1] = pf[kk][2] = pf[kk][3] = 0u;
#pragma unroll 1
    for (int i = 0; i < NS; i++) load_tile(i); /* Q rides in tile 0's group */
    cp_async_wait<NS - 1>();
    fence_proxy_async(); /* this thread's cp.async data, before the tensor cores read it */
    __syncthreads();
    if (wg_tiles > 0) {
        float ca, cb;
        issue_s(0);
        wgmma_wait<0>();
        softmax(0, ca, cb);
        rescale_and_pack(ca, cb);
    }
#pragma unroll 1
    for (int j = 0; j < n_tiles; j++) {
        if (j + 1 < n_tiles) {
            cp_async_wait<NS - 2>(); /* tile j + 1 landed; j + 2 may be in flight */
            fence_proxy_async();
            __syncthreads();
        }
        if (j + 1 < wg_tiles) {
            float ca, cb;
            issue_s(j + 1);
            issue_pv(j);
            wgmma_wait<1>(); /* S(j + 1) done; P(j) V(j) may still run */
            softmax(j + 1, ca, cb);
            wgmma_wait<0>();
            rescale_and_pack(ca, cb);
        } else if (j < wg_tiles) {
            issue_pv(j);
            wgmma_wait<0>();
#pragma unroll
            for (int n = 0; n < NA; n++)
#pragma unroll
                for (int i = 0; i < 32; i++) reg_fence(o[n][i]);
        }
        __syncthreads(); /* every warpgroup is done with tile j's stage */
        load_tile(j + NS);
    }
    cp_async_wait<0>();
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float ia = l0 > 0.0f ? 1.0f / l0 : 0.0f, ib = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int n = 0; n < NA; n++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            int c = h * HD + n * 64 + nt * 8 + 2 * tq;
            if (ra < a.n_rows)
                *reinterpret_cast<__half2 *>(a.out + (size_t)ra * qd + c) = __floats2half2_rn(o[n][nt * 4] * ia, o[n][nt * 4 + 1] * ia);
            if (rb < a.n_rows)
                *reinterpret_cast<__half2 *>(a.out + (size_t)rb * qd + c) =
                    __floats2half2_rn(o[n][nt * 4 + 2] * ib, o[n][nt * 4 + 3] * ib);
        }
}

int wk_cu_attn_prefill_supported(int hd) { return hd == 64 || hd == 128; }

template <int HD> static void launch_mma(const wk_cu_attn_args *a, cudaStream_t s) {
    size_t smem = (size_t)4 * 64 * (HD + 8) * sizeof(__half) + 2 * 64;
    cudaFuncSetAttribute(attn_prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    attn_prefill_kernel<HD><<<dim3((a->n_rows + 63) / 64, a->n_heads), 128, smem, s>>>(*a);
}

template <int HD, int NWG, bool HP> static void launch_wgmma_pipe(const wk_cu_attn_args *a, cudaStream_t s) {
    size_t smem = 1024 + (size_t)64 * NWG * HD * 2 + (size_t)6 * 64 * HD * 2 + 3 * 64;
    int bq = HP ? 64 : 64 * NWG;
    cudaFuncSetAttribute(attn_prefill_wgmma_pipe_kernel<HD, NWG, HP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    attn_prefill_wgmma_pipe_kernel<HD, NWG, HP><<<dim3((a->n_rows + bq - 1) / bq, HP ? a->n_heads / NWG : a->n_heads), 128 * NWG, smem, s>>>(*a);
}

int wk_cu_prefill_kernel_named(const char *name) {
    static const char *const names[] = {"mma", "pipe", "pairs", "auto"};
    if (!name) return WK_CU_PREFILL_AUTO;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

void wk_cu_attn_prefill(const wk_cu_attn_args *a, cudaStream_t s) {
    int k = a->prefill_kernel;
    /* measured on an H100 (exec/cuda/README.md): pairs 1.22-1.29x mma.sync at head_dim 128, 0.77x at 64 */
    if (k == WK_CU_PREFILL_AUTO) k = a->hd == 128 ? WK_CU_PREFILL_PAIRS : WK_CU_PREFILL_MMA;
    int pairs = k == WK_CU_PREFILL_PAIRS && (a->n_heads / a->n_kv) % 2 == 0;
    if (pairs) {
        if (a->hd == 128) launch_wgmma_pipe<128, 2, true>(a, s);
        else launch_wgmma_pipe<64, 2, true>(a, s);
    } else if (k == WK_CU_PREFILL_PIPE || k == WK_CU_PREFILL_PAIRS) {
        if (a->hd == 128) launch_wgmma_pipe<128, 2, false>(a, s);
        else launch_wgmma_pipe<64, 2, false>(a, s);
    } else {
        if (a->hd == 128) launch_mma<128>(a, s);
        else launch_mma<64>(a, s);
    }
}
