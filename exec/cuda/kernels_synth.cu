/* Synthetic weights generated on the GPU (no download, no host copy of 16 GB) and fp32 -> fp16
 * conversion of loaded weights. The hash is lowbias32 over (index + hash(key)) mod 2^32, written so
 * tools/bench_transformers.py reproduces it bit for bit with torch integer ops. */
#include "exec/cuda/kernels.cuh"

__host__ __device__ static inline uint32_t lowbias32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uint32_t wk_cu_hash32(uint32_t x) { return lowbias32(x); }

/* u in [-1, 1): 24 high bits of the hash; mul and add rounded separately (no FMA) to match torch. */
__device__ static inline float synth_value(size_t i, uint32_t hkey, float scale, float offset) {
    uint32_t h = lowbias32((uint32_t)i + hkey);
    float u = __fsub_rn(__fmul_rn((float)(h >> 8), 1.0f / 8388608.0f), 1.0f);
    return __fadd_rn(__fmul_rn(u, scale), offset);
}

__global__ void synth_f16_kernel(__half *dst, size_t n, uint32_t hkey, float scale, float offset) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half_rn(synth_value(i, hkey, scale, offset));
}

__global__ void synth_f32_kernel(float *dst, size_t n, uint32_t hkey, float scale, float offset) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = synth_value(i, hkey, scale, offset);
}

__global__ void f32_to_f16_kernel(__half *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half_rn(src[i]);
}

static unsigned grid_for(size_t n) {
    size_t b = (n + 255) / 256;
    return (unsigned)(b > 65536 ? 65536 : (b ? b : 1));
}

void wk_cu_synth_f16(__half *dst, size_t n, uint32_t key, float scale, float offset, cudaStream_t s) {
    synth_f16_kernel<<<grid_for(n), 256, 0, s>>>(dst, n, lowbias32(key), scale, offset);
}

void wk_cu_synth_f32(float *dst, size_t n, uint32_t key, float scale, float offset, cudaStream_t s) {
    synth_f32_kernel<<<grid_for(n), 256, 0, s>>>(dst, n, lowbias32(key), scale, offset);
}

void wk_cu_f32_to_f16(__half *dst, const float *src, size_t n, cudaStream_t s) {
    f32_to_f16_kernel<<<grid_for(n), 256, 0, s>>>(dst, src, n);
}
