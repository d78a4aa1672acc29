/* Tensor-core and async-copy building blocks shared by the attention kernels (prefill and the
 * tensor-core decode): mma.sync m16n8k16 (fp16 in, fp32 accumulate), ldmatrix fragments from shared
 * memory, cp.async 16-byte copies that bypass registers, fp16 packing. */
#ifndef WIKV_EXEC_CUDA_MMA_CUH
#define WIKV_EXEC_CUDA_MMA_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#define LOG2E 1.4426950408889634f

/* c[4] += a (16x16, row) * b (16x8, col): the accumulator layout of mma.sync m16n8k16. */
__device__ static inline void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8x8 fp16 matrices from shared memory (lane l addresses row l % 8 of matrix l / 8). */
__device__ static inline void ldmatrix_x4(uint32_t r[4], const __half *p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ static inline void ldmatrix_x4_trans(uint32_t r[4], const __half *p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

/* 16-byte global -> shared copy that bypasses registers; src_bytes 0 writes zeros (absent slots). */
__device__ static inline void cp_async16(__half *dst, const __half *src, int src_bytes) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(src_bytes));
}
__device__ static inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ static inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ static inline uint32_t pack_half2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
__device__ static inline uint32_t ld32(const __half *p) { return *reinterpret_cast<const uint32_t *>(p); }

#endif
