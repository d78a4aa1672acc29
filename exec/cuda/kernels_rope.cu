/* q/k/v post-processing after the fused QKV GEMM: bias (Qwen2), per-head RMSNorm (Qwen3), HF
 * rotate-half RoPE, and the store of K (rotated) and V into the cache slot with its presence flag.
 * One block per (token, head); CPU reference: qkv_step() in exec/cpu/engine_cpu.c. */
#include "exec/cuda/kernels.cuh"

/* Sum over a block of 64 threads. */
__device__ static float sum64(float v, float *red /* [2] shared */) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float t = red[0] + red[1];
    __syncthreads();
    return t;
}

/* grid (n, n_heads + n_kv), block 64. Heads below n_heads are query heads; the rest are KV heads,
 * which also copy their V head. Each thread owns pairs (i, i + hd/2), the rotate-half partners. */
__global__ void rope_store_kernel(wk_cu_rope_args a) {
    __shared__ float red[2];
    __shared__ float buf[512]; /* one head vector, hd <= 512 */
    /* Launched with wk_cu_launch_pdl. The trigger comes first: the next kernel (decode attention)
     * may then start staging its cache tiles while this one waits and works. */
    cudaTriggerProgrammaticLaunchCompletion();
    cudaGridDependencySynchronize();
    int t = blockIdx.x, hh = blockIdx.y, hd = a.hd, half = hd / 2;
    int qd = a.n_heads * hd, kd = a.n_kv * hd, width = qd + 2 * kd;
    int is_q = hh < a.n_heads, g = hh - a.n_heads;
    int col = is_q ? hh * hd : qd + g * hd;
    const __half *src = a.qkv + (size_t)t * width + col;
    const float *nw = is_q ? a.q_norm : a.k_norm;
    for (int i = threadIdx.x; i < hd; i += blockDim.x)
        buf[i] = __half2float(src[i]) + (a.bias ? a.bias[col + i] : 0.0f);
    __syncthreads();
    if (nw) {
        float ss = 0.0f;
        for (int i = threadIdx.x; i < hd; i += blockDim.x) ss += buf[i] * buf[i];
        float inv = rsqrtf(sum64(ss, red) / hd + a.eps);
        for (int i = threadIdx.x; i < hd; i += blockDim.x) buf[i] = nw[i] * (buf[i] * inv);
        __syncthreads();
    }
    int p = a.pos + t;
    __half *dst = is_q ? a.q_out + (size_t)t * qd + hh * hd : a.k_cache + ((size_t)g * a.cap + p) * hd;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float ang = (float)p * a.inv_freq[i], sn, cs;
        sincosf(ang, &sn, &cs);
        float x0 = buf[i], x1 = buf[i + half];
        dst[i] = __float2half(x0 * cs - x1 * sn);
        dst[i + half] = __float2half(x1 * cs + x0 * sn);
    }
    if (!is_q) {
        int vcol = qd + kd + g * hd;
        const __half *vs = a.qkv + (size_t)t * width + vcol;
        __half *vd = a.v_cache + ((size_t)g * a.cap + p) * hd;
        for (int i = threadIdx.x; i < hd; i += blockDim.x)
            vd[i] = a.bias ? __float2half(__half2float(vs[i]) + a.bias[vcol + i]) : vs[i];
        if (threadIdx.x == 0) a.present[(size_t)g * a.cap + p] = 1;
    }
}

void wk_cu_rope_store(const wk_cu_rope_args *a, cudaStream_t s) {
    dim3 grid(a->n, a->n_heads + a->n_kv);
    wk_cu_launch_pdl(rope_store_kernel, grid, dim3(64), 0, s, *a);
}
