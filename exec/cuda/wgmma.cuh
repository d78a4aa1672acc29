/* Hopper warpgroup tensor-core building blocks (sm_90a): wgmma.mma_async m64n64k16 (fp16 in, fp32
 * accumulate) with shared-memory operand descriptors for 128-byte-swizzled tiles, and the fences
 * around it. A warpgroup is 4 consecutive warps (128 threads) starting at a warp index divisible by 4;
 * every wgmma, fence, commit and wait below is executed by all 128 threads together.
 *
 * Tile layout (both operands): fp16 rows of 64 columns (128 bytes), 8-row groups of 1024 bytes, the
 * 16-byte chunk c of row r stored at chunk (c ^ (r % 8)) of that row (the 128-byte swizzle); a
 * wider matrix is cut into 64-column slabs stored one after the other. swz_off() gives the byte
 * offset of a chunk; tiles start 1024-byte aligned.
 *
 * Accumulator layout of m64nN (the same as mma.sync m16n8 per 16-row slice): warp w % 4 of the
 * warpgroup holds rows 16 (w % 4) + g and + 8 (g = lane / 4, t = lane % 4); d[4 j + 0, 1] are row g,
 * columns 8 j + 2 t, + 1, d[4 j + 2, 3] row g + 8. A fragments from registers follow mma.sync's A
 * layout for the warp's 16 rows. */
#ifndef WIKV_EXEC_CUDA_WGMMA_CUH
#define WIKV_EXEC_CUDA_WGMMA_CUH

#include <stdint.h>

/* Byte offset of 16-byte chunk c (0 .. cols / 8 - 1) of row r in a swizzled tile of `rows` rows. */
__device__ static inline uint32_t swz_off(int r, int c, int rows) {
    return (uint32_t)((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/* Descriptor of a 128B-swizzled operand at shared address `addr` (bytes). Both byte offsets are 1024:
 * the step between 8-row groups (K-major) or 8-row K groups (MN-major); the other field is unused
 * by the single-slab operands used here. */
__device__ static inline uint64_t wgmma_desc(uint32_t addr) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(1024 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}

__device__ static inline void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ static inline void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ static inline void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
/* Keeps the compiler from moving accesses of accumulator registers across wgmma issue / wait. */
__device__ static inline void reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }
/* Generic-proxy writes (cp.async, st.shared) before async-proxy reads (wgmma) of the same memory. */
__device__ static inline void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

#define WK_WGMMA_D32                                                                                                          \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, " \
    "%25, %26, %27, %28, %29, %30, %31}"
#define WK_WGMMA_D32_OPS                                                                                                     \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]),  \
        "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), \
        "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

/* d (64x64) = (accumulate ? d : 0) + A (64x16, K-major in smem) * B (16x64, K-major in smem: B's
 * rows are its 64 columns). */
__device__ static inline void wgmma_64x64x16_ss(float d[32], uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " WK_WGMMA_D32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : WK_WGMMA_D32_OPS
                 : "l"(da), "l"(db), "r"(accumulate));
}

/* d (64x64) += A (64x16, registers) * B (16x64, MN-major in smem: 16 rows of 64 contiguous columns). */
__device__ static inline void wgmma_64x64x16_rs_mn(float d[32], const uint32_t a[4], uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " WK_WGMMA_D32
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : WK_WGMMA_D32_OPS
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

#endif
