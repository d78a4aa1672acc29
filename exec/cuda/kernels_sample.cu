/* Greedy sampling on the device: argmax of a logits row, so a decode step returns 4 bytes instead of
 * the whole vocabulary row. CPU reference: wk_sampler_argmax() (lowest index on ties). */
#include "exec/cuda/kernels.cuh"

/* grid (rows), block 1024: each thread scans a strided slice, then a tree over (value, index). */
__global__ void argmax_kernel(int32_t *out, const float *logits, int vocab) {
    __shared__ float bv[1024];
    __shared__ int bi[1024];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    float v = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (row[i] > v) { v = row[i]; idx = i; } /* strictly greater: first (lowest) index wins */
    bv[threadIdx.x] = v;
    bi[threadIdx.x] = idx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float ov = bv[threadIdx.x + s];
            int oi = bi[threadIdx.x + s];
            if (ov > bv[threadIdx.x] || (ov == bv[threadIdx.x] && oi < bi[threadIdx.x])) {
                bv[threadIdx.x] = ov;
                bi[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = bi[0] == 0x7fffffff ? 0 : bi[0];
}

void wk_cu_argmax(int32_t *out, const float *logits, int rows, int vocab, cudaStream_t s) {
    argmax_kernel<<<rows, 1024, 0, s>>>(out, logits, vocab);
}
