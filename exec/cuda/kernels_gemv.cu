/* Matrix-vector products of the decode step (one token), where the weights stream through once and
 * memory bandwidth is everything. A persistent grid (as many blocks as fit on the GPU at once) of
 * 8-warp blocks; each warp walks its rows in tiles of U 16-byte vectors per lane and loads the next
 * tile into registers before it multiplies the current one, so a tile is always in flight. The
 * first tile is requested before the block builds its input, so the prologue hides under the load.
 * The input vector sits in shared memory (fp16). Fused around the product, so one decode layer is
 * 7 launches instead of 11:
 *   - RMSNorm of the fp32 residual as the input (every block recomputes the norm: 16 KB from L2),
 *   - SwiGLU: the warp reads the gate row and the up row together and writes silu(g) * u,
 *   - residual add into the fp32 stream.
 * CPU reference: matmul() / rmsnorm() / mlp_layer() in exec/cpu/engine_cpu.c. */
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

/* Vectors per lane and tile: 8 (4 KB per warp in flight), 4 each for the gate and up rows. */
template <bool SWIGLU> struct gemv_tile {
    static constexpr int U = SWIGLU ? 4 : 8;
    static constexpr int VECS = 32 * U; /* 16-byte vectors of one row per tile */
};

/* Tile t of row `row` (vector v = (t U + j) 32 + lane of the row), zeros past the row's end or the
 * matrix; SWIGLU: the same tile of the up row (row + out) into w1. */
template <bool SWIGLU>
__device__ static inline void load_tile(uint4 *w0, uint4 *w1, const wk_cu_gemv_args &a, int row, int t, int lane) {
    constexpr int U = gemv_tile<SWIGLU>::U;
    int nv = a.in / 8;
    const uint4 *p = reinterpret_cast<const uint4 *>(a.w) + (size_t)row * nv;
    const uint4 *q = p + (size_t)a.out * nv;
#pragma unroll
    for (int j = 0; j < U; j++) {
        int v = (t * U + j) * 32 + lane;
        bool ok = row < a.out && v < nv;
        w0[j] = ok ? __ldcs(p + v) : make_uint4(0, 0, 0, 0);
        if (SWIGLU) w1[j] = ok ? __ldcs(q + v) : make_uint4(0, 0, 0, 0);
    }
}

/* L2 prefetch of the rest of row `row` (and its up row) past the first tile, 128-byte lines. */
template <bool SWIGLU>
__device__ static inline void prefetch_row(const wk_cu_gemv_args &a, int row, int lane) {
    if (row >= a.out) return;
    const char *p = reinterpret_cast<const char *>(a.w + (size_t)row * a.in);
    const char *q = reinterpret_cast<const char *>(a.w + (size_t)(row + a.out) * a.in);
    for (size_t off = (size_t)gemv_tile<SWIGLU>::VECS * 16 + (size_t)lane * 128; off < (size_t)a.in * 2; off += 32 * 128) {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off));
        if (SWIGLU) asm volatile("prefetch.global.L2 [%0];" ::"l"(q + off));
    }
}

/* Input into xs: RMSNorm(x) * norm_w, or a copy of xh; zeros from in to the padded length. */
__device__ static void load_input(const wk_cu_gemv_args &a, __half *xs, int padded, float *red) {
    int in = a.in;
    if (a.x) {
        float ss = 0.0f;
        for (int i = threadIdx.x; i < in; i += blockDim.x) ss += a.x[i] * a.x[i];
        float inv = rsqrtf(block_sum(ss, red) / in + a.eps);
        for (int i = threadIdx.x; i < in; i += blockDim.x) xs[i] = __float2half(a.norm_w[i] * (a.x[i] * inv));
    } else {
        for (int i = threadIdx.x * 8; i < in; i += blockDim.x * 8)
            *reinterpret_cast<uint4 *>(xs + i) = *reinterpret_cast<const uint4 *>(a.xh + i);
    }
    for (int i = in + threadIdx.x; i < padded; i += blockDim.x) xs[i] = __float2half(0.0f);
}

/* grid <= blocks resident at once, block 256, dynamic smem = padded input (tiles * VECS * 16 bytes).
 * Warp w of block b owns rows b * 8 + w + k * gridDim * 8; it walks (row, tile) pairs in order,
 * loading pair i + 1 while it multiplies pair i. SWIGLU: rows r and r + out of W. */
template <bool SWIGLU>
__global__ __launch_bounds__(256) void gemv_kernel(wk_cu_gemv_args a) {
    constexpr int U = gemv_tile<SWIGLU>::U, VECS = gemv_tile<SWIGLU>::VECS;
    extern __shared__ __align__(16) __half xs[];
    __shared__ float red[32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int tiles = (a.in / 8 + VECS - 1) / VECS, step = gridDim.x * GEMV_WARPS;
    int row = blockIdx.x * GEMV_WARPS + warp, t = 0;
    uint4 cur0[U], cur1[U];
    load_tile<SWIGLU>(cur0, cur1, a, row, t, lane);
    prefetch_row<SWIGLU>(a, row, lane);
    /* Launched with programmatic stream serialisation: everything above reads only weights and may
     * overlap the previous kernel's tail; its outputs (our input, the residual we add into) are
     * complete and visible only after this wait. The next kernel may start launching now. */
    cudaGridDependencySynchronize();
    cudaTriggerProgrammaticLaunchCompletion();
    load_input(a, xs, tiles * VECS * 8, red);
    __syncthreads();
    float acc0 = 0.0f, acc1 = 0.0f;
    while (row < a.out) { /* warp-uniform */
        int nrow = row, nt = t + 1;
        if (nt == tiles) nt = 0, nrow += step;
        uint4 nxt0[U], nxt1[U];
        load_tile<SWIGLU>(nxt0, nxt1, a, nrow, nt, lane);
#pragma unroll
        for (int j = 0; j < U; j++) {
            const __half *xv = xs + ((t * U + j) * 32 + lane) * 8;
            acc0 += dot8(cur0[j], xv);
            if (SWIGLU) acc1 += dot8(cur1[j], xv);
        }
        if (nt == 0) { /* row done */
            acc0 = warp_sum(acc0);
            if (SWIGLU) acc1 = warp_sum(acc1);
            if (lane == 0) {
                if (SWIGLU) reinterpret_cast<__half *>(a.y)[row] = __float2half(acc0 / (1.0f + expf(-acc0)) * acc1);
                else if (a.mode == WK_GEMV_F16) reinterpret_cast<__half *>(a.y)[row] = __float2half(acc0);
                else if (a.mode == WK_GEMV_F32) reinterpret_cast<float *>(a.y)[row] = acc0;
                else reinterpret_cast<float *>(a.y)[row] += acc0;
            }
            acc0 = acc1 = 0.0f;
        }
#pragma unroll
        for (int j = 0; j < U; j++) {
            cur0[j] = nxt0[j];
            if (SWIGLU) cur1[j] = nxt1[j];
        }
        row = nrow;
        t = nt;
    }
}

int wk_cu_gemv_supported(int in) { return in % 8 == 0 && in <= 24576; }

template <bool SWIGLU> static size_t gemv_smem(int in) {
    constexpr int VECS = gemv_tile<SWIGLU>::VECS;
    return (size_t)(in / 8 + VECS - 1) / VECS * VECS * 16;
}

int wk_cu_gemv_max_blocks(int swiglu, int in, int n_sm) {
    int per_sm = 0;
    cudaError_t ce = swiglu ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_kernel<true>, 32 * GEMV_WARPS, gemv_smem<true>(in))
                            : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_kernel<false>, 32 * GEMV_WARPS, gemv_smem<false>(in));
    if (ce != cudaSuccess || per_sm < 1) per_sm = 1;
    return per_sm * n_sm;
}

/* Programmatic dependent launch (wk_cu_launch_pdl): the first tile loads while the previous kernel
 * drains. */
void wk_cu_gemv(const wk_cu_gemv_args *a, cudaStream_t s) {
    unsigned grid = (unsigned)((a->out + GEMV_WARPS - 1) / GEMV_WARPS);
    if (a->max_blocks > 0 && grid > (unsigned)a->max_blocks) grid = (unsigned)a->max_blocks;
    if (a->mode == WK_GEMV_SWIGLU) wk_cu_launch_pdl(gemv_kernel<true>, dim3(grid), dim3(32 * GEMV_WARPS), gemv_smem<true>(a->in), s, *a);
    else wk_cu_launch_pdl(gemv_kernel<false>, dim3(grid), dim3(32 * GEMV_WARPS), gemv_smem<false>(a->in), s, *a);
}
