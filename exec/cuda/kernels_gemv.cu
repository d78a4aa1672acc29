/* Matrix-vector products of the decode step (one token), where the weights stream through once and
 * memory bandwidth is everything. One warp per output row (or row pair), each lane reading 16-byte
 * vectors, four per row in flight; the input vector sits in shared memory (fp16). Fused around the
 * product, so one decode layer is 6 launches (with attention and its reduction) instead of 11:
 *   - RMSNorm of the fp32 residual as the input (every block recomputes the norm: 16 KB from L2, in
 *     batches of 16-byte loads, so the prologue costs a few memory round trips, not one per element),
 *   - SwiGLU: the warp reads the gate row and the up row together and writes silu(g) * u,
 *   - residual add into the fp32 stream,
 *   - RoPE and the K/V cache store of the QKV product (models without q/k/v bias or q/k norm): the
 *     warp computes the two rows that RoPE pairs, so no separate RoPE kernel runs,
 *   - the greedy argmax of the LM head.
 * CPU reference: matmul() / rmsnorm() / mlp_layer() / qkv_step() in exec/cpu/engine_cpu.c,
 * wk_sampler_argmax(). */
#include "exec/cuda/kernels.cuh"

#define GEMV_WARPS 8

__device__ static inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static float block_sum(float v, float *red) {
    v = warp_sum(v);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < GEMV_WARPS ? red[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

/* dot of 8 fp16 weights with 8 fp16 inputs, fp32 products. */
__device__ static inline float dot8(uint4 w, const __half *x) {
    uint4 xv = *reinterpret_cast<const uint4 *>(x);
    const __half2 *wh = reinterpret_cast<const __half2 *>(&w), *xh = reinterpret_cast<const __half2 *>(&xv);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 a = __half22float2(wh[i]), b = __half22float2(xh[i]);
        s += a.x * b.x + a.y * b.y;
    }
    return s;
}

/* Input into xs: RMSNorm(x) * norm_w, or a copy of xh; zeros from in to the padded length. Every
 * thread issues a batch of 16-byte loads before it uses any (one memory round trip per batch: a
 * strided one-element loop costs a round trip per element, ~10 us for 4096 floats). */
__device__ static void load_input(const wk_cu_gemv_args &a, __half *xs, int padded, float *red) {
    constexpr int B = 2; /* 16-byte loads per thread and batch (x and norm_w each; 2 B for a copy) */
    int in = a.in, tid = threadIdx.x, nt = blockDim.x;
    if (a.x) {
        const float4 *x4 = reinterpret_cast<const float4 *>(a.x), *w4 = reinterpret_cast<const float4 *>(a.norm_w);
        int n4 = in / 4;
        float ss = 0.0f;
        for (int b = 0; b < n4; b += B * nt) {
            float4 v[B];
#pragma unroll
            for (int k = 0; k < B; k++) v[k] = b + k * nt + tid < n4 ? x4[b + k * nt + tid] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
            for (int k = 0; k < B; k++) ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
        }
        float inv = rsqrtf(block_sum(ss, red) / in + a.eps);
        for (int b = 0; b < n4; b += B * nt) {
            float4 v[B], w[B];
#pragma unroll
            for (int k = 0; k < B; k++) {
                int i = b + k * nt + tid;
                v[k] = i < n4 ? x4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                w[k] = i < n4 ? w4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int k = 0; k < B; k++) {
                int i = b + k * nt + tid;
                if (i < n4) {
                    __half2 *d = reinterpret_cast<__half2 *>(xs + 4 * i);
                    d[0] = __floats2half2_rn(w[k].x * (v[k].x * inv), w[k].y * (v[k].y * inv));
                    d[1] = __floats2half2_rn(w[k].z * (v[k].z * inv), w[k].w * (v[k].w * inv));
                }
            }
        }
    } else {
        const uint4 *h8 = reinterpret_cast<const uint4 *>(a.xh);
        uint4 *d8 = reinterpret_cast<uint4 *>(xs);
        int n8 = in / 8;
        for (int b = 0; b < n8; b += 2 * B * nt) {
            uint4 v[2 * B];
#pragma unroll
            for (int k = 0; k < 2 * B; k++) v[k] = b + k * nt + tid < n8 ? h8[b + k * nt + tid] : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int k = 0; k < 2 * B; k++)
                if (b + k * nt + tid < n8) d8[b + k * nt + tid] = v[k];
        }
    }
    for (int i = in + tid; i < padded; i += nt) xs[i] = __float2half(0.0f);
}

/* One batch of a row: the 16-byte vectors at columns c, c + 256, c + 512, c + 768 (zeros past in),
 * all requested before any is used. */
__device__ static inline void load_batch(const __half *w, int c, int in, uint4 u[4]) {
#pragma unroll
    for (int j = 0; j < 4; j++)
        u[j] = c + j * 256 < in ? __ldcs(reinterpret_cast<const uint4 *>(w + c + j * 256)) : make_uint4(0, 0, 0, 0);
}

__device__ static inline float dot_batch(const uint4 u[4], const __half *xs, int c, int in) {
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; j++)
        if (c + j * 256 < in) s += dot8(u[j], xs + c + j * 256);
    return s;
}

/* What one warp computes: ONE row; SWIGLU the gate row r and the up row r + out; ROPE the rows i and
 * i + hd / 2 of one q / k / v head (the rotate-half partners). */
enum { K_ONE = 0, K_SWIGLU = 1, K_ROPE = 2 };

/* Units of work (one per warp pass) of a launch. */
template <int KIND> __device__ static inline int gemv_units(const wk_cu_gemv_args &a) { return KIND == K_ROPE ? a.out / 2 : a.out; }

/* The two weight rows of unit u (r1 unused for ONE). */
template <int KIND> __device__ static inline void unit_rows(const wk_cu_gemv_args &a, int u, int *r0, int *r1) {
    if (KIND == K_ROPE) {
        int half = a.hd / 2;
        *r0 = u / half * a.hd + u % half;
        *r1 = *r0 + half;
    } else {
        *r0 = u;
        *r1 = u + a.out;
    }
}

/* ROPE epilogue of unit u with the products y0 (row i) and y1 (row i + hd / 2) of head hh: q and k
 * are rotated at position pos (as rope_store_kernel), q goes to q_out, k and v to the cache slot pos,
 * which the k unit i = 0 marks present. */
__device__ static inline void rope_store(const wk_cu_gemv_args &a, int u, float y0, float y1) {
    int half = a.hd / 2, hh = u / half, i = u % half, nq = a.n_heads, nk = a.n_kv;
    if (hh < nq + nk) {
        float ang = (float)a.pos * a.inv_freq[i], sn, cs;
        sincosf(ang, &sn, &cs);
        float r0 = y0 * cs - y1 * sn, r1 = y1 * cs + y0 * sn;
        y0 = r0;
        y1 = r1;
    }
    __half *dst = hh < nq        ? a.q_out + (size_t)hh * a.hd
                  : hh < nq + nk ? a.k_cache + ((size_t)(hh - nq) * a.cap + a.pos) * a.hd
                                 : a.v_cache + ((size_t)(hh - nq - nk) * a.cap + a.pos) * a.hd;
    dst[i] = __float2half(y0);
    dst[i + half] = __float2half(y1);
    if (hh >= nq && hh < nq + nk && i == 0) a.present[(size_t)(hh - nq) * a.cap + a.pos] = 1;
}

/* Unit u of the product. Lane l reads columns [8 (l + 32 j), +8). When `loaded`, u / v already
 * hold the first batch of the unit's rows. */
template <int KIND>
__device__ static inline float gemv_row(const wk_cu_gemv_args &a, const __half *xs, int row, int lane, uint4 u[4], uint4 v[4],
                                        bool loaded) {
    constexpr bool TWO = KIND != K_ONE;
    int in = a.in, r0, r1;
    unit_rows<KIND>(a, row, &r0, &r1);
    const __half *w0 = a.w + (size_t)r0 * in, *w1 = a.w + (size_t)r1 * in;
    float acc0 = 0.0f, acc1 = 0.0f;
    for (int c = lane * 8; c < in; c += 4 * 256) {
        if (!loaded) {
            load_batch(w0, c, in, u);
            if (TWO) load_batch(w1, c, in, v);
        }
        loaded = false;
        acc0 += dot_batch(u, xs, c, in);
        if (TWO) acc1 += dot_batch(v, xs, c, in);
    }
    acc0 = warp_sum(acc0);
    if (TWO) acc1 = warp_sum(acc1);
    if (lane != 0) return acc0;
    if (KIND == K_ROPE) rope_store(a, row, acc0, acc1);
    else if (KIND == K_SWIGLU) {
        float g = acc0;
        reinterpret_cast<__half *>(a.y)[row] = __float2half(g / (1.0f + expf(-g)) * acc1);
    } else if (a.mode == WK_GEMV_F16) reinterpret_cast<__half *>(a.y)[row] = __float2half(acc0);
    else if (a.mode == WK_GEMV_F32) reinterpret_cast<float *>(a.y)[row] = acc0;
    else reinterpret_cast<float *>(a.y)[row] += acc0;
    return acc0;
}

/* (value, row) as one integer whose order is the argmax order: larger value first, then the lower
 * row (as wk_sampler_argmax); NaN ranks below everything, so it is never chosen over a number. */
__device__ static inline unsigned long long argmax_key(float v, int row) {
    unsigned b = __float_as_uint(v);
    unsigned hi = isnan(v) ? 0u : (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((unsigned long long)hi << 32) | (0xffffffffu - (unsigned)row);
}

/* grid (min(ceil(units / 8), max_blocks)), block 256, dynamic smem in * 2 bytes. Warp w of block b: unit
 * b * 8 + w, then every gridDim * 8 further (few resident blocks, so the input norm is paid once per
 * block, not once per 8 units).
 * EARLY (launched with wk_cu_launch_pdl): each warp requests the first batch of its first row before
 * it waits for the previous kernel (weights are written by no kernel of the step), so the weight
 * stream starts while the previous kernel drains and runs under the input prologue.
 * AMAX (F32 mode): also the argmax key of the rows into *a.amax. */
template <int KIND, bool EARLY, bool AMAX>
__global__ __launch_bounds__(256, KIND != K_ONE ? 4 : 6) void gemv_kernel(wk_cu_gemv_args a) {
    extern __shared__ __align__(16) __half xs[]; /* (in) */
    __shared__ float red[32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, row = blockIdx.x * GEMV_WARPS + warp;
    uint4 u[4] = {}, v[4] = {};
    bool loaded = false;
    int units = gemv_units<KIND>(a);
    if (EARLY) {
        if (row < units) {
            int r0, r1;
            unit_rows<KIND>(a, row, &r0, &r1);
            load_batch(a.w + (size_t)r0 * a.in, lane * 8, a.in, u);
            if (KIND != K_ONE) load_batch(a.w + (size_t)r1 * a.in, lane * 8, a.in, v);
            loaded = true;
        }
        cudaGridDependencySynchronize();
        cudaTriggerProgrammaticLaunchCompletion();
    }
    load_input(a, xs, a.in, red);
    __syncthreads();
    unsigned long long best = 0;
    for (; row < units; row += gridDim.x * GEMV_WARPS) {
        float y = gemv_row<KIND>(a, xs, row, lane, u, v, loaded);
        loaded = false;
        if (AMAX) best = max(best, argmax_key(y, row));
    }
    if (AMAX) { /* the block's best row, then one atomic per block */
        __shared__ unsigned long long bk[GEMV_WARPS];
        if (lane == 0) bk[warp] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < GEMV_WARPS; w++) best = max(best, bk[w]);
            atomicMax(a.amax, best);
        }
    }
}

int wk_cu_gemv_supported(int in) { return in % 8 == 0 && in <= 24576; }

int32_t wk_cu_argmax_key_row(unsigned long long key) { return (int32_t)(0xffffffffu - (unsigned)(key & 0xffffffffu)); }

void wk_cu_gemv(const wk_cu_gemv_args *a, cudaStream_t s) {
    int units = a->mode == WK_GEMV_ROPE ? a->out / 2 : a->out;
    unsigned grid = (unsigned)((units + GEMV_WARPS - 1) / GEMV_WARPS);
    if (a->max_blocks > 0 && grid > (unsigned)a->max_blocks) grid = (unsigned)a->max_blocks;
    size_t smem = (size_t)a->in * sizeof(__half);
    void (*k)(wk_cu_gemv_args);
    if (a->mode == WK_GEMV_SWIGLU) k = a->early ? gemv_kernel<K_SWIGLU, true, false> : gemv_kernel<K_SWIGLU, false, false>;
    else if (a->mode == WK_GEMV_ROPE) k = a->early ? gemv_kernel<K_ROPE, true, false> : gemv_kernel<K_ROPE, false, false>;
    else if (a->amax) k = a->early ? gemv_kernel<K_ONE, true, true> : gemv_kernel<K_ONE, false, true>;
    else k = a->early ? gemv_kernel<K_ONE, true, false> : gemv_kernel<K_ONE, false, false>;
    if (a->early) wk_cu_launch_pdl(k, dim3(grid), dim3(32 * GEMV_WARPS), smem, s, *a);
    else k<<<grid, 32 * GEMV_WARPS, smem, s>>>(*a);
}
