// mma.cuh — warp-level tensor-core building blocks: mma.sync m16n8k16 (bf16 in, fp32 accumulate), ldmatrix
// (.x1/.x2/.x4, optional .trans) and 16-byte cp.async with commit_group / wait_group / wait_all.
//
// Why: the portable kernels use FFMA only; attention (kernels/flash_attention.cuh) and future matmul kernels need
// the tensor cores. Under nvcc (sm_80+) each wrapper is one inline PTX instruction. On the CUDA-on-CPU layer (g++)
// each one runs through the layer's warp collectives (cuda_cpu/cucpu.h), which follow the PTX ISA's fragment
// layouts exactly, so a kernel that puts a fragment element in the wrong lane computes a wrong result on the CPU
// as it would on a GPU, and cp.async copies land only at the matching wait (a read before the wait sees poison).
//
// Conventions: destination first. Registers of b16 data are uint32_t holding two values, the lower-indexed one in
// the low half. Fragment layouts (groupID g = lane >> 2, tig t = lane % 4):
//   A 16×16 (row-major): a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
//   B 16×8  (k × n, "col"): b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   C/D 16×8 (fp32): c[0], c[1] = C[g][2t], C[g][2t+1]; c[2], c[3] = C[g+8][2t], C[g+8][2t+1]
// ldmatrix: lanes 8i..8i+7 give the row addresses (16 bytes each, 16-byte aligned, shared memory) of matrix i;
//   lane l receives, of matrix i, row l/4, elements 2(l%4), 2(l%4)+1 (with .trans: column l/4, rows 2(l%4), +1).
//   Hence, for a row-major bf16 tile X in shared memory: A = X[r0..r0+15][c0..c0+15] is ldmatrix_x4 with lane l
//   pointing at X[r0 + (l & 15)][c0 + 8 (l >> 4)]; B = X^T (X holds n rows of k values, e.g. K for Q·K^T) is
//   ldmatrix (no .trans) of X's rows; B = X (X holds k rows of n values, e.g. V for P·V) is ldmatrix .trans.
#pragma once
#include <cstdint>

#include "cuda_cpu/compat.cuh"

#ifdef __CUDACC__
#define KERN_MMA_LOC
#define KERN_MMA_LOC0
#define KERN_MMA_AT
#else
#define KERN_MMA_LOC0 CUCPU_LOC
#define KERN_MMA_LOC , CUCPU_LOC  // the CPU layer's messages name the calling kernel line
#define KERN_MMA_AT CUCPU_AT
#endif

namespace kern {

// Two floats -> one register of two bf16 (round to nearest even), lo in the low half.
__device__ inline uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo (low half), .y = hi
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}

// d = a·b + c with A 16×16 bf16 (4 regs), B 16×8 bf16 (2 regs), C/D 16×8 fp32 (4 floats). d may alias c.
__device__ inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                      const float (&c)[4] KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                  // D: 4 fp32 per lane
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),                  // A: 4 regs of bf16x2
        "r"(b[0]), "r"(b[1]),                                         // B: 2 regs of bf16x2
        "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));                  // C: 4 fp32 per lane
#elif defined(__CUDA_ARCH__)
  __trap();  // bf16 mma.sync needs sm_80
#endif
#else
  cucpu::mma_m16n8k16_bf16(d, a, b, c, KERN_MMA_AT);
#endif
}

// Generic -> shared-window address (what the .shared forms of ldmatrix and cp.async take).
__device__ inline uint32_t smem_u32(const void* p) {
#if defined(__CUDA_ARCH__)
  return (uint32_t)__cvta_generic_to_shared(p);
#else
  (void)p;
  return 0;  // never used on the CPU layer (it takes generic pointers)
#endif
}

// ldmatrix .x1: lanes 0..7 give the row addresses; r0 = row l/4, elements 2(l%4), 2(l%4)+1.
__device__ inline void ldmatrix_x1(uint32_t& r0, const void* row KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem_u32(row)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::ldmatrix(&r0, 1, false, row, KERN_MMA_AT);
#endif
}
__device__ inline void ldmatrix_x1_trans(uint32_t& r0, const void* row KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem_u32(row)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::ldmatrix(&r0, 1, true, row, KERN_MMA_AT);
#endif
}
// .x2: lanes 0..15 give the addresses (8i..8i+7: matrix i); r[i] from matrix i.
__device__ inline void ldmatrix_x2(uint32_t (&r)[2], const void* row KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(row)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::ldmatrix(r, 2, false, row, KERN_MMA_AT);
#endif
}
__device__ inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(row)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::ldmatrix(r, 2, true, row, KERN_MMA_AT);
#endif
}
// .x4: all 32 lanes give addresses; r[i] from matrix i (lanes 8i..8i+7).
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const void* row KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(row)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::ldmatrix(r, 4, false, row, KERN_MMA_AT);
#endif
}
__device__ inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(row)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::ldmatrix(r, 4, true, row, KERN_MMA_AT);
#endif
}

// cp.async 16 bytes global -> shared, src_bytes (0..16) read and the rest zero-filled (0: nothing is read, the
// 16 destination bytes become zeros: how tiles pad rows past the end of a tensor). .cg bypasses L1 (streamed
// tiles), .ca caches in L1. The destination is undefined until a wait retires the group (then __syncthreads
// makes it visible to the other threads).
__device__ inline void cp_async_cg16(void* smem_dst, const void* gmem_src, int src_bytes = 16 KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem_dst)), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::cp_async(smem_dst, gmem_src, 16, (unsigned)src_bytes, true, KERN_MMA_AT);
#endif
}
__device__ inline void cp_async_ca16(void* smem_dst, const void* gmem_src, int src_bytes = 16 KERN_MMA_LOC) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem_dst)), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
#else
  cucpu::cp_async(smem_dst, gmem_src, 16, (unsigned)src_bytes, false, KERN_MMA_AT);
#endif
}
// cp.async.commit_group: close this thread's current group of cp.asyncs.
__device__ inline void cp_async_commit(KERN_MMA_LOC0) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
#else
  cucpu::cp_async_commit(KERN_MMA_AT);
#endif
}
// cp.async.wait_group N: wait until at most the newest N committed groups are still in flight (older groups'
// data is in shared memory, visible to this thread; __syncthreads before other threads read it).
template <int N>
__device__ inline void cp_async_wait_group(KERN_MMA_LOC0) {
  static_assert(N >= 0 && N <= 7, "cp.async.wait_group takes 0..7");
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");  // "memory": no smem read moves above the wait
#endif
#else
  cucpu::cp_async_wait_group((unsigned)N, KERN_MMA_AT);
#endif
}
// cp.async.wait_all: commit_group + wait_group 0 (every issued copy, committed or not, has landed).
__device__ inline void cp_async_wait_all(KERN_MMA_LOC0) {
#ifdef __CUDACC__
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
#else
  cucpu::cp_async_wait_all(KERN_MMA_AT);
#endif
}

}  // namespace kern
