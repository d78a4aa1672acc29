/* SwiGLU of the fused gate/up GEMM output: h = silu(gate) * up, computed in fp32.
 * CPU reference: mlp_layer() in exec/cpu/engine_cpu.c. */
#include "exec/cuda/kernels.cuh"

/* grid-stride over n * hidden elements; gu row t is [gate (hidden) | up (hidden)]. */
__global__ void swiglu_kernel(__half *h, const __half *gu, int n, int hidden) {
    size_t total = (size_t)n * hidden;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / hidden, j = i % hidden;
        float g = __half2float(gu[t * 2 * hidden + j]), u = __half2float(gu[t * 2 * hidden + hidden + j]);
        h[i] = __float2half(g / (1.0f + expf(-g)) * u);
    }
}

void wk_cu_swiglu(__half *h, const __half *gu, int n, int hidden, cudaStream_t s) {
    size_t total = (size_t)n * hidden;
    size_t blocks = (total + 255) / 256;
    if (blocks > 65536) blocks = 65536;
    swiglu_kernel<<<(unsigned)blocks, 256, 0, s>>>(h, gu, n, hidden);
}
