/* Decode attention split over the sequence (flash-decoding): a few query rows against a long cache
 * would leave most SMs idle if one block walked all keys, so the keys of each (row, KV head) are cut
 * into n_splits ranges, each block writes a partial (max, sum, weighted V) per query head, and a
 * second kernel merges them. Also the attention export (softmax weights per slot) and the presence
 * rules of exec/engine.h. CPU reference: attend() in exec/cpu/engine_cpu.c. */
#include "exec/cuda/kernels.cuh"
#include "exec/cuda/mma.cuh"

#define TK 32 /* keys per tile: one key per lane when scoring */
/* Threads of the split reduction: hd = 128 gives 8 split groups, so each thread sums ~8 splits
 * (two rounds of four independent loads at 4K context and 66 splits). */
#define REDUCE_THREADS 1024

__device__ static inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ static inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* dot(q (hd) fp32 in smem, k (hd) fp16 in smem), 16-byte reads; four partial sums, so the FMAs of
 * consecutive 8-element slices do not wait on each other. */
__device__ static inline float dot_qk(const float *q, const __half *k, int hd) {
    float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
#pragma unroll 4
    for (int c = 0; c < hd; c += 8) {
        uint4 u = *reinterpret_cast<const uint4 *>(k + c);
        const __half2 *h2 = reinterpret_cast<const __half2 *>(&u);
        float4 qa = *reinterpret_cast<const float4 *>(q + c), qb = *reinterpret_cast<const float4 *>(q + c + 4);
        float2 f0 = __half22float2(h2[0]), f1 = __half22float2(h2[1]), f2 = __half22float2(h2[2]), f3 = __half22float2(h2[3]);
        d0 += qa.x * f0.x + qa.y * f0.y;
        d1 += qa.z * f1.x + qa.w * f1.y;
        d2 += qb.x * f2.x + qb.y * f2.y;
        d3 += qb.z * f3.x + qb.w * f3.y;
    }
    return (d0 + d1) + (d2 + d3);
}

__device__ static inline int window_lo(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

/* Requests keys [t0, t0 + TK) of K and V into Kd / Vd ([TK][ld]) as one cp.async group; rows at or
 * past k1 are zero-filled. */
__device__ static inline void stage_tile(__half *Kd, __half *Vd, const __half *Kg, const __half *Vg, int t0, int k1, int hd, int ld) {
    int nvec = hd / 8;
    for (int i = threadIdx.x; i < TK * nvec; i += blockDim.x) {
        int row = i / nvec, c = (i % nvec) * 8, t = t0 + row;
        size_t off = (size_t)(t < k1 ? t : t0) * hd + c;
        cp_async16(Kd + row * ld + c, Kg + off, t < k1 ? 16 : 0);
        cp_async16(Vd + row * ld + c, Vg + off, t < k1 ? 16 : 0);
    }
    cp_async_commit();
}

/* grid (n_splits, n_kv, n_rows), block G = n_heads / n_kv warps (warp w = query head g * G + w).
 * The split's keys go in 32-key tiles through two shared-memory buffers: tile i + 1 streams in
 * (cp.async) while tile i is used. Lane j scores key j, then the warp folds the tile into its running
 * (m, l, acc) with the online-softmax rescale. Absent keys are never zeroed in memory: MASKED mode
 * gives them -inf, ZERO mode the score 0 of a zero K; both skip their V (a zero V adds nothing).
 * Lane owns output elements 2 (lane + 32 i) and +1, i < NP. part[(r, h, split)] = acc (hd), m, l
 * (log2 domain). */
template <int NP>
__global__ void attn_decode_kernel(wk_cu_attn_args a, float *part, int n_splits, int split_len) {
    extern __shared__ __align__(16) unsigned char smem[];
    int split = blockIdx.x, g = blockIdx.y, r = blockIdx.z;
    int G = a.n_heads / a.n_kv, hd = a.hd, ld = hd + 8; /* +8 halves: conflict-free 16-byte row reads */
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, h = g * G + warp;
    __half *Ks = reinterpret_cast<__half *>(smem);       /* [2][TK][ld] */
    __half *Vs = Ks + 2 * TK * ld;                       /* [2][TK][ld] */
    float *Qs = reinterpret_cast<float *>(Vs + 2 * TK * ld); /* [G][hd] */
    int p = a.pos0 + r, lo = window_lo(p, a.window);
    int k0 = split * split_len, k1 = min(k0 + split_len, p + 1);
    k0 = max(k0, lo);
    int ntiles = k1 > k0 ? (k1 - k0 + TK - 1) / TK : 0;
    const __half *Kg = a.k + (size_t)g * a.cap * hd, *Vg = a.v + (size_t)g * a.cap * hd;
    const uint8_t *pres = a.present + (size_t)g * a.cap;
    /* Launched with wk_cu_launch_pdl: only the chunk's own slots [pos0, pos0 + n_rows) and q are
     * written by the kernel before (RoPE + store), so a first tile below pos0 is staged before the
     * wait; the rest waits for it. */
    bool early = k0 + TK <= a.pos0;
    int pr = 0; /* this tile's presence byte of key lane */
    cudaTriggerProgrammaticLaunchCompletion(); /* the reduction (and after it the O product) may start */
    if (ntiles > 0 && early) {
        stage_tile(Ks, Vs, Kg, Vg, k0, k1, hd, ld);
        pr = k0 + lane < k1 ? pres[k0 + lane] : 0;
    }
    cudaGridDependencySynchronize();
    if (ntiles > 0 && !early) {
        stage_tile(Ks, Vs, Kg, Vg, k0, k1, hd, ld);
        pr = k0 + lane < k1 ? pres[k0 + lane] : 0;
    }
    for (int i = threadIdx.x; i < G * hd; i += blockDim.x)
        Qs[i] = __half2float(a.q[(size_t)r * a.n_heads * hd + (size_t)g * G * hd + i]);
    const float sl2 = rsqrtf((float)hd) * LOG2E;
    float m = -INFINITY, l = 0.0f, acc[2 * NP];
#pragma unroll
    for (int i = 0; i < 2 * NP; i++) acc[i] = 0.0f;
    for (int it = 0; it < ntiles; it++) {
        int t0 = k0 + it * TK, buf = it & 1, pr_next = 0;
        if (it + 1 < ntiles) {
            stage_tile(Ks + (buf ^ 1) * TK * ld, Vs + (buf ^ 1) * TK * ld, Kg, Vg, t0 + TK, k1, hd, ld);
            pr_next = t0 + TK + lane < k1 ? pres[t0 + TK + lane] : 0;
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads(); /* tile it (and Qs on the first pass) visible to every warp */
        const __half *Kt = Ks + buf * TK * ld, *Vt = Vs + buf * TK * ld;
        int t = t0 + lane;
        bool vis = t < k1 && pr;
        float s = -INFINITY;
        if (vis) s = dot_qk(Qs + warp * hd, Kt + lane * ld, hd) * sl2;
        else if (t < k1 && a.zero_mode) s = 0.0f;
        float m_new = fmaxf(m, warp_max(s));
        if (m_new != -INFINITY) { /* something visible so far: warp-uniform */
            float corr = exp2f(m - m_new), pj = exp2f(s - m_new);
            l = l * corr + warp_sum(pj);
            m = m_new;
#pragma unroll
            for (int i = 0; i < 2 * NP; i++) acc[i] *= corr;
            unsigned vmask = __ballot_sync(0xffffffffu, vis); /* keys past k1 are not visible either */
#pragma unroll 8
            for (int j = 0; j < TK; j++) {
                float pt = __shfl_sync(0xffffffffu, pj, j);
                if (!((vmask >> j) & 1u)) continue; /* absent: V counts as zero */
                const __half *vr = Vt + j * ld;
#pragma unroll
                for (int i = 0; i < NP; i++) {
                    int e = 2 * (lane + 32 * i);
                    if (e < hd) {
                        float2 v2 = __half22float2(*reinterpret_cast<const __half2 *>(vr + e));
                        acc[2 * i] += pt * v2.x;
                        acc[2 * i + 1] += pt * v2.y;
                    }
                }
            }
        }
        pr = pr_next;
        __syncthreads(); /* buffer buf is refilled by the next pass's stage_tile */
    }
    float *pp = part + (((size_t)r * a.n_heads + h) * n_splits + split) * (hd + 2);
#pragma unroll
    for (int i = 0; i < NP; i++) {
        int e = 2 * (lane + 32 * i);
        if (e < hd) {
            pp[e] = acc[2 * i];
            pp[e + 1] = acc[2 * i + 1];
        }
    }
    if (lane == 0) {
        pp[hd] = m;
        pp[hd + 1] = l;
    }
}

/* ---- tensor-core decode: one query row, head_dim 64 or 128 ----------------------------------- */

#define MMA_WARPS 4 /* warps per block of the tensor-core decode kernel */

/* grid (n_splits, n_kv), block MMA_WARPS warps; one query row (pos0). The G query heads of KV head g
 * are the rows of the mma A operand (rows >= G are zero), so each K/V tile is read from shared
 * memory once for the whole group, and QK^T and PV run on the tensor cores (fp16 in, fp32
 * accumulate; P rounded to fp16 as in the prefill kernel). Warp w walks the 32-key tiles w, w + 4, ...
 * of the split through its own two buffers (cp.async; the first two requested at once, cache tiles
 * below pos0 before the wait for RoPE). Absent keys: the presence byte is loaded beside the tile, not
 * before it; MASKED gives -inf, ZERO the score 0, and their V rows are zeroed in shared memory (so a
 * zero V adds nothing whatever the slot holds). Thread (gq = lane / 4, tq = lane % 4) holds rows gq,
 * gq + 8 (the mma accumulator layout). At the end the warps' (m, l, o) merge in shared memory into
 * part[(h, split)] = acc (hd), m, l (log2 domain), as the CUDA-core kernel writes it.
 * Dynamic smem: MMA_WARPS x 2 x (K, V) tiles of [32][HD + 8] fp16. */
template <int HD>
__global__ __launch_bounds__(32 * MMA_WARPS) void attn_decode_mma_kernel(wk_cu_attn_args a, float *part, int n_splits,
                                                                         int split_len) {
    constexpr int BK = TK, LD = HD + 8, KS = HD / 16, NT = HD / 8, SN = BK / 8, NW = MMA_WARPS;
    extern __shared__ __align__(16) unsigned char smem[];
    int split = blockIdx.x, g = blockIdx.y, G = a.n_heads / a.n_kv;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane >> 2, tq = lane & 3;
    __half *Kb = reinterpret_cast<__half *>(smem) + (size_t)warp * 4 * BK * LD; /* [2][BK][LD] */
    __half *Vb = Kb + 2 * BK * LD;                                              /* [2][BK][LD] */
    int p = a.pos0, k0 = max(split * split_len, window_lo(p, a.window)), k1 = min(split * split_len + split_len, p + 1);
    int ntiles = k1 > k0 ? (k1 - k0 + BK - 1) / BK : 0;
    int mine = ntiles > warp ? (ntiles - warp + NW - 1) / NW : 0; /* this warp's tiles: warp, warp + NW, ... */
    const __half *Kg = a.k + (size_t)g * a.cap * HD, *Vg = a.v + (size_t)g * a.cap * HD;
    const uint8_t *pres = a.present + (size_t)g * a.cap;
    /* The warp's i-th tile into buffer buf as one cp.async group (empty past the last tile, so that
     * the group count stays fixed); keys at or past k1 are zero-filled. Returns key lane's presence. */
    auto stage = [&](int i, int buf) -> int {
        int pr = 0;
        if (i < mine) {
            int t0 = k0 + (warp + NW * i) * BK;
            for (int j = lane; j < BK * HD / 8; j += 32) {
                int row = j / (HD / 8), c = (j % (HD / 8)) * 8, t = t0 + row;
                size_t off = (size_t)(t < k1 ? t : t0) * HD + c;
                cp_async16(Kb + (buf * BK + row) * LD + c, Kg + off, t < k1 ? 16 : 0);
                cp_async16(Vb + (buf * BK + row) * LD + c, Vg + off, t < k1 ? 16 : 0);
            }
            pr = t0 + lane < k1 ? pres[t0 + lane] : 0;
        }
        cp_async_commit();
        return pr;
    };
    /* Launched with wk_cu_launch_pdl: RoPE writes q and the slot p of this step, nothing below it. */
    cudaTriggerProgrammaticLaunchCompletion();
    bool e0 = mine > 0 && k0 + (warp + 1) * BK <= p, e1 = e0 && mine > 1 && k0 + (warp + NW + 1) * BK <= p;
    int pr0 = 0, pr1 = 0;
    if (e0) pr0 = stage(0, 0);
    if (e1) pr1 = stage(1, 1);
    cudaGridDependencySynchronize();
    if (!e0) pr0 = stage(0, 0);
    if (!e1) pr1 = stage(1, 1);
    const __half *qg = a.q + (size_t)g * G * HD;
    uint32_t qf[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        int c = kk * 16 + 2 * tq;
        qf[kk][0] = gq < G ? ld32(qg + gq * HD + c) : 0u;
        qf[kk][1] = gq + 8 < G ? ld32(qg + (gq + 8) * HD + c) : 0u;
        qf[kk][2] = gq < G ? ld32(qg + gq * HD + c + 8) : 0u;
        qf[kk][3] = gq + 8 < G ? ld32(qg + (gq + 8) * HD + c + 8) : 0u;
    }
    float o[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const float sl2 = rsqrtf((float)HD) * LOG2E;
    for (int i = 0; i < mine; i++) {
        int buf = i & 1, t0 = k0 + (warp + NW * i) * BK;
        cp_async_wait<1>(); /* tile i landed (tile i + 1's group is the newest) */
        __syncwarp();
        unsigned inr = __ballot_sync(0xffffffffu, t0 + lane < k1), vis = __ballot_sync(0xffffffffu, t0 + lane < k1 && pr0);
        const __half *Ks = Kb + buf * BK * LD;
        __half *Vs = Vb + buf * BK * LD;
        if (inr & ~vis) { /* absent keys in range: V counts as zero */
            for (int j = lane; j < BK * HD / 8; j += 32)
                if (((inr & ~vis) >> (j / (HD / 8))) & 1u)
                    *reinterpret_cast<uint4 *>(Vs + (j / (HD / 8)) * LD + (j % (HD / 8)) * 8) = make_uint4(0, 0, 0, 0);
            __syncwarp();
        }
        float sc[SN][4];
#pragma unroll
        for (int nt = 0; nt < SN; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++)
#pragma unroll
            for (int nt = 0; nt < SN; nt += 2) {
                uint32_t b[4];
                ldmatrix_x4(b, Ks + ((nt + (lane >> 4)) * 8 + (lane & 7)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816(sc[nt], qf[kk], b[0], b[1]);
                mma16816(sc[nt + 1], qf[kk], b[2], b[3]);
            }
        float mxa = -INFINITY, mxb = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < SN; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int kc = nt * 8 + 2 * tq + (e & 1);
                float v = !((inr >> kc) & 1u) ? -INFINITY : ((vis >> kc) & 1u) ? sc[nt][e] * sl2 : (a.zero_mode ? 0.0f : -INFINITY);
                sc[nt][e] = v;
                if (e < 2) mxa = fmaxf(mxa, v);
                else mxb = fmaxf(mxb, v);
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
            sc[nt][0] = exp2f(sc[nt][0] - ua);
            sc[nt][1] = exp2f(sc[nt][1] - ua);
            sc[nt][2] = exp2f(sc[nt][2] - ub);
            sc[nt][3] = exp2f(sc[nt][3] - ub);
            suma += sc[nt][0] + sc[nt][1];
            sumb += sc[nt][2] + sc[nt][3];
        }
        l0 = l0 * ca + suma;
        l1 = l1 * cb + sumb;
#pragma unroll
        for (int i2 = 0; i2 < NT; i2++) {
            o[i2][0] *= ca;
            o[i2][1] *= ca;
            o[i2][2] *= cb;
            o[i2][3] *= cb;
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pf[4] = {pack_half2(sc[2 * kk][0], sc[2 * kk][1]), pack_half2(sc[2 * kk][2], sc[2 * kk][3]),
                              pack_half2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]), pack_half2(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int nt = 0; nt < NT; nt += 2) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, Vs + (kk * 16 + (lane & 15)) * LD + (nt + (lane >> 4)) * 8);
                mma16816(o[nt], pf, b[0], b[1]);
                mma16816(o[nt + 1], pf, b[2], b[3]);
            }
        }
        __syncwarp(); /* every lane is done with buf before it is refilled */
        pr0 = pr1;
        pr1 = stage(i + 2, buf);
    }
    cp_async_wait<0>();
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    __syncthreads(); /* all warps are done with their tiles: the buffers take the merge */
    float *Om = reinterpret_cast<float *>(smem); /* [NW][16][HD] */
    float *Mm = Om + NW * 16 * HD, *Lm = Mm + NW * 16; /* [NW][16] each */
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int c = nt * 8 + 2 * tq;
        Om[(warp * 16 + gq) * HD + c] = o[nt][0];
        Om[(warp * 16 + gq) * HD + c + 1] = o[nt][1];
        Om[(warp * 16 + gq + 8) * HD + c] = o[nt][2];
        Om[(warp * 16 + gq + 8) * HD + c + 1] = o[nt][3];
    }
    if (tq == 0) {
        Mm[warp * 16 + gq] = m0;
        Mm[warp * 16 + gq + 8] = m1;
        Lm[warp * 16 + gq] = l0;
        Lm[warp * 16 + gq + 8] = l1;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
        int r = i / HD, e = i % HD;
        float M = -INFINITY, acc = 0.0f, L = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) M = fmaxf(M, Mm[w * 16 + r]);
#pragma unroll
        for (int w = 0; w < NW; w++) {
            float mw = Mm[w * 16 + r], wt = mw == -INFINITY ? 0.0f : exp2f(mw - M);
            acc += Om[(w * 16 + r) * HD + e] * wt;
            L += Lm[w * 16 + r] * wt;
        }
        float *pp = part + ((size_t)(g * G + r) * n_splits + split) * (HD + 2);
        pp[e] = acc;
        if (e == 0) {
            pp[HD] = M;
            pp[HD + 1] = L;
        }
    }
}

static int decode_on_tensor_cores(const wk_cu_attn_args *a) {
    return a->n_rows == 1 && (a->hd == 64 || a->hd == 128) && a->n_heads / a->n_kv <= 16 && !a->simt_decode;
}

/* grid (n_rows * n_heads), block REDUCE_THREADS: merges the splits of one (row, head); no visible slot -> 0.
 * The split weights 2^(m_s - M) / L go to shared memory in parallel; then thread (e, j) sums
 * acc_s[e] over the splits s = j (mod REDUCE_THREADS / hd), reads coalesced over e, independent over s. */
__global__ void attn_reduce_kernel(wk_cu_attn_args a, const float *part, int n_splits) {
    extern __shared__ float wsm[]; /* (n_splits) weights, then (blockDim) partial sums */
    __shared__ float red[32];
    /* Launched with wk_cu_launch_pdl; triggering first lets the O matrix-vector kernel start its
     * weight stream while the attention still runs. */
    cudaTriggerProgrammaticLaunchCompletion();
    cudaGridDependencySynchronize();
    int rh = blockIdx.x, hd = a.hd, w = hd + 2;
    const float *pp = part + (size_t)rh * n_splits * w;
    float mx = -INFINITY;
    for (int s = threadIdx.x; s < n_splits; s += blockDim.x) mx = fmaxf(mx, pp[s * w + hd]);
    mx = warp_max(mx);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
    __syncthreads();
    float M = -INFINITY;
    for (int i = 0; i < (int)blockDim.x / 32; i++) M = fmaxf(M, red[i]);
    __syncthreads();
    float L = 0.0f;
    for (int s = threadIdx.x; s < n_splits; s += blockDim.x) {
        float m = pp[s * w + hd], wt = m == -INFINITY ? 0.0f : exp2f(m - M);
        wsm[s] = wt;
        L += pp[s * w + hd + 1] * wt;
    }
    L = warp_sum(L);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = L;
    __syncthreads();
    L = 0.0f;
    for (int i = 0; i < (int)blockDim.x / 32; i++) L += red[i];
    int groups = blockDim.x / hd > 0 ? blockDim.x / hd : 1, e = threadIdx.x % hd, j = threadIdx.x / hd;
    float o = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f; /* four chains: loads issue back to back */
    if (j < groups && e < hd) {
        int s = j;
        for (; s + 3 * groups < n_splits; s += 4 * groups) {
            o += pp[s * w + e] * wsm[s];
            o1 += pp[(s + groups) * w + e] * wsm[s + groups];
            o2 += pp[(s + 2 * groups) * w + e] * wsm[s + 2 * groups];
            o3 += pp[(s + 3 * groups) * w + e] * wsm[s + 3 * groups];
        }
        for (; s < n_splits; s += groups) o += pp[s * w + e] * wsm[s];
    }
    o += o1 + o2 + o3;
    float *sums = wsm + n_splits;
    sums[threadIdx.x] = o;
    __syncthreads();
    __half *out = a.out + (size_t)rh * hd; /* (row, head) rows are contiguous: rh = r * n_heads + h */
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float t = 0.0f;
        for (int g = 0; g < groups; g++) t += sums[g * hd + i];
        out[i] = __float2half(L > 0.0f ? t / L : 0.0f);
    }
}

int wk_cu_attn_decode_splits(const wk_cu_attn_args *a, int n_sm) {
    int T = a->pos0 + a->n_rows, max_splits = (T + TK - 1) / TK;
    if (decode_on_tensor_cores(a)) { /* one block of MMA_WARPS warps per SM (its buffers fill most of it) */
        int want = n_sm / a->n_kv > 0 ? n_sm / a->n_kv : 1;
        return want < max_splits ? want : max_splits;
    }
    /* About 4 blocks per SM: each block then streams only a few 32-key tiles, and enough of them are
     * in flight to cover the memory latency (2 per SM left the 4K-context step latency-bound). */
    int want = (4 * n_sm + a->n_kv * a->n_rows - 1) / (a->n_kv * a->n_rows);
    if (want < 1) want = 1;
    return want < max_splits ? want : max_splits;
}

size_t wk_cu_attn_decode_part_floats(const wk_cu_attn_args *a, int n_splits) {
    return (size_t)a->n_rows * a->n_heads * n_splits * (a->hd + 2);
}

void wk_cu_attn_decode(const wk_cu_attn_args *a, float *part, int n_splits, cudaStream_t s) {
    int T = a->pos0 + a->n_rows, G = a->n_heads / a->n_kv;
    int split_len = ((T + n_splits - 1) / n_splits + TK - 1) / TK * TK;
    dim3 grid(n_splits, a->n_kv, a->n_rows);
    if (decode_on_tensor_cores(a)) {
        size_t smem = (size_t)MMA_WARPS * 4 * TK * (a->hd + 8) * sizeof(__half);
        void (*k)(wk_cu_attn_args, float *, int, int) = a->hd == 128 ? attn_decode_mma_kernel<128> : attn_decode_mma_kernel<64>;
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        wk_cu_launch_pdl(k, grid, dim3(32 * MMA_WARPS), smem, s, *a, part, n_splits, split_len);
        wk_cu_launch_pdl(attn_reduce_kernel, dim3(a->n_heads), dim3(REDUCE_THREADS), (size_t)(n_splits + REDUCE_THREADS) * sizeof(float),
                         s, *a, part, n_splits);
        return;
    }
    size_t smem = (size_t)4 * TK * (a->hd + 8) * sizeof(__half) + (size_t)G * a->hd * sizeof(float);
    int np = (a->hd + 63) / 64;
    /* Above 48 KB (head_dim 256 with many heads per group) the dynamic limit must be raised. */
    if (np == 1) {
        if (smem > 48 * 1024) cudaFuncSetAttribute(attn_decode_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        wk_cu_launch_pdl(attn_decode_kernel<1>, grid, dim3(32 * G), smem, s, *a, part, n_splits, split_len);
    } else if (np == 2) {
        if (smem > 48 * 1024) cudaFuncSetAttribute(attn_decode_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        wk_cu_launch_pdl(attn_decode_kernel<2>, grid, dim3(32 * G), smem, s, *a, part, n_splits, split_len);
    } else {
        if (smem > 48 * 1024) cudaFuncSetAttribute(attn_decode_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        wk_cu_launch_pdl(attn_decode_kernel<4>, grid, dim3(32 * G), smem, s, *a, part, n_splits, split_len);
    }
    wk_cu_launch_pdl(attn_reduce_kernel, dim3(a->n_rows * a->n_heads), dim3(REDUCE_THREADS),
                     (size_t)(n_splits + REDUCE_THREADS) * sizeof(float), s, *a, part, n_splits);
}

/* ---- attention export ------------------------------------------------------------------------- */

__device__ static float block_reduce(float v, float *red /* [32] */, int is_max) {
    v = is_max ? warp_max(v) : warp_sum(v);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : (is_max ? -INFINITY : 0.0f);
    t = is_max ? warp_max(t) : warp_sum(t);
    __syncthreads();
    return t;
}

/* Score of slot t for query q (smem, fp32), log2 domain; -inf when not visible. */
__device__ static float export_score(const wk_cu_attn_args &a, const float *q, int g, int t, float sl2) {
    const uint8_t pr = a.present[(size_t)g * a.cap + t];
    if (!pr) return a.zero_mode ? 0.0f : -INFINITY;
    const __half *k = a.k + ((size_t)g * a.cap + t) * a.hd;
    float d = 0.0f;
    for (int i = 0; i < a.hd; i++) d += q[i] * __half2float(k[i]);
    return d * sl2;
}

/* grid (n_rows - row0, n_heads), block 256: three passes over the row's slots (max, sum, add), so no
 * score buffer of the row's length is needed. Group heads add into the same slot (atomicAdd). */
__global__ void attn_export_kernel(wk_cu_attn_args a, int row0, float *attn, int stride) {
    __shared__ float q[256];
    __shared__ float red[32];
    int r = row0 + blockIdx.x, h = blockIdx.y, g = h / (a.n_heads / a.n_kv);
    for (int i = threadIdx.x; i < a.hd; i += blockDim.x) q[i] = __half2float(a.q[((size_t)r * a.n_heads + h) * a.hd + i]);
    __syncthreads();
    int p = a.pos0 + r, lo = window_lo(p, a.window);
    float sl2 = rsqrtf((float)a.hd) * LOG2E, mx = -INFINITY, sum = 0.0f;
    for (int t = lo + threadIdx.x; t <= p; t += blockDim.x) mx = fmaxf(mx, export_score(a, q, g, t, sl2));
    mx = block_reduce(mx, red, 1);
    if (mx == -INFINITY) return; /* block-uniform */
    for (int t = lo + threadIdx.x; t <= p; t += blockDim.x) sum += exp2f(export_score(a, q, g, t, sl2) - mx);
    sum = block_reduce(sum, red, 0);
    for (int t = lo + threadIdx.x; t <= p; t += blockDim.x)
        atomicAdd(attn + (size_t)g * stride + t, exp2f(export_score(a, q, g, t, sl2) - mx) / sum);
}

void wk_cu_attn_export(const wk_cu_attn_args *a, int row0, float *attn, int stride, cudaStream_t s) {
    dim3 grid(a->n_rows - row0, a->n_heads);
    attn_export_kernel<<<grid, 256, 0, s>>>(*a, row0, attn, stride);
}
