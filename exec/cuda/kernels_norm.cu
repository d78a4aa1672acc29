/* Embedding gather and RMSNorm. The residual stream stays fp32 (as in the CPU reference) so that
 * 32 layers of fp16 rounding do not accumulate in it; the normed copy fed to the GEMMs is fp16.
 * CPU reference: rmsnorm() in exec/cpu/engine_cpu.c. */
#include "exec/cuda/kernels.cuh"

/* grid (n), block 256: row t of x (dim) = embed row tokens[t]. */
__global__ void embed_kernel(float *x, const __half *embed, const int32_t *tokens, int dim) {
    const __half *src = embed + (size_t)tokens[blockIdx.x] * dim;
    float *dst = x + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = __half2float(src[i]);
}

void wk_cu_embed(float *x, const __half *embed, const int32_t *tokens, int n, int dim, cudaStream_t s) {
    embed_kernel<<<n, 256, 0, s>>>(x, embed, tokens, dim);
}

/* Sum over the block of v (blockDim.x a multiple of 32, <= 1024); every thread gets the total. */
__device__ static float block_sum(float v, float *red /* [32] shared */) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    __syncthreads(); /* red may be reused by the caller */
    return t;
}

/* grid (n), block 512: one row per block; x read twice (sum of squares, then scale), L1/L2-resident. */
__global__ void rmsnorm_kernel(__half *out, const float *x, const float *w, int dim, float eps) {
    __shared__ float red[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, red);
    float inv = rsqrtf(ss / dim + eps);
    __half *o = out + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = __float2half(w[i] * (xr[i] * inv));
}

void wk_cu_rmsnorm(__half *out, const float *x, const float *w, int n, int dim, float eps, cudaStream_t s) {
    rmsnorm_kernel<<<n, 512, 0, s>>>(out, x, w, dim, eps);
}
