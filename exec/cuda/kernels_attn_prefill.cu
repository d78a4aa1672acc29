/* Flash-style prefill attention on the tensor cores (mma.sync m16n8k16, fp16 in, fp32 accumulate):
 * a block owns 64 query rows of one head and walks the cache in 64-key tiles with an online softmax,
 * so no (rows x keys) score matrix is ever stored: memory stays O(tile) at any context length.
 * Presence rules as in exec/engine.h; CPU reference: attend() in exec/cpu/engine_cpu.c. */
#include "exec/cuda/kernels.cuh"
#include "exec/cuda/mma.cuh"

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

int wk_cu_attn_prefill_supported(int hd) { return hd == 64 || hd == 128; }

void wk_cu_attn_prefill(const wk_cu_attn_args *a, cudaStream_t s) {
    dim3 grid((a->n_rows + 63) / 64, a->n_heads);
    size_t smem = (size_t)4 * 64 * (a->hd + 8) * sizeof(__half) + 2 * 64;
    if (a->hd == 128) {
        cudaFuncSetAttribute(attn_prefill_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        attn_prefill_kernel<128><<<grid, 128, smem, s>>>(*a);
    } else {
        cudaFuncSetAttribute(attn_prefill_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        attn_prefill_kernel<64><<<grid, 128, smem, s>>>(*a);
    }
}
