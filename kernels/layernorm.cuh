// layernorm.cuh — LayerNorm forward, fused residual + LayerNorm forward, LayerNorm backward.
//
// Why this shape:
// * Forward: one warp per row. A row (C ≤ a few thousand) fits a warp's loop comfortably, the reductions are
//   warp shuffles (no shared memory, no block barrier), and the row is re-read from L1/L2 for the second and
//   third pass. Two-pass variance like the reference (sum of (x − mean)², not E[x²] − mean²).
// * Fused residual + LN: residual = a + b is written out (it is the residual stream) and normalised in the
//   same pass, saving one full read of the residual. The LN is computed from the STORED (floatX-rounded)
//   residual, so the fused op equals residual_forward followed by layernorm_forward bit for bit.
// * Backward: dweight/dbias must be deterministic, so no float atomics. Each block owns a fixed set of rows
//   (row = block, block + grid, ...) and each thread owns fixed columns, accumulating its columns' partial
//   dweight/dbias in shared memory over the block's rows. Blocks write their partials to an fp32 scratch
//   (grid, 2C); a second kernel sums the blocks in order and adds into dweight/dbias. The per-row reductions
//   for dinp are block reductions with a fixed tree. Grid size depends only on N, so results are bitwise
//   reproducible for a given shape.
// mean/rstd are fp32 (N) whatever floatX is. eps = 1e-5, biased variance, as in ref::layernorm_forward.
#pragma once
#include "kernels/common.cuh"

namespace kern {

constexpr float kLayerNormEps = 1e-5f;

// ---------------------------------------------------------------------------------------------------------
// Forward: one warp per row. VEC > 1 requires C % VEC == 0 and 16-byte aligned pointers (launcher checks).

template <class T, int VEC>
__device__ inline void layernorm_row_warp(T* out, float* mean, float* rstd, const T* x, const T* weight,
                                          const T* bias, int row, int C, int lane) {
  float sum = 0.0f;
  for (int c = lane * VEC; c < C; c += WARP_SIZE * VEC) {
    const Packed<T, VEC> p = load_packed<VEC>(x + c);
    for (int k = 0; k < VEC; k++) sum += to_float(p[k]);
  }
  const float m = warp_sum(sum) / C;
  float sq = 0.0f;
  for (int c = lane * VEC; c < C; c += WARP_SIZE * VEC) {
    const Packed<T, VEC> p = load_packed<VEC>(x + c);
    for (int k = 0; k < VEC; k++) {
      const float d = to_float(p[k]) - m;
      sq += d * d;
    }
  }
  const float s = 1.0f / sqrtf(warp_sum(sq) / C + kLayerNormEps);
  for (int c = lane * VEC; c < C; c += WARP_SIZE * VEC) {
    const Packed<T, VEC> p = load_packed<VEC>(x + c);
    const Packed<T, VEC> w = load_packed<VEC>(weight + c), b = load_packed<VEC>(bias + c);
    Packed<T, VEC> y;
    for (int k = 0; k < VEC; k++) y[k] = from_float<T>((to_float(p[k]) - m) * s * to_float(w[k]) + to_float(b[k]));
    store_packed<VEC>(out + (size_t)row * C + c, y);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = s;
  }
}

template <class T, int VEC>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                                         const T* bias, int N, int C) {
  const int warps_per_block = blockDim.x / WARP_SIZE;
  const int row = blockIdx.x * warps_per_block + threadIdx.x / WARP_SIZE;
  if (row >= N) return;  // whole warp leaves together; no block barrier in this kernel
  layernorm_row_warp<T, VEC>(out, mean, rstd, inp + (size_t)row * C, weight, bias, row, C, threadIdx.x % WARP_SIZE);
}

// residual = a + b (stored), then ln = LayerNorm(residual). One warp per row.
template <class T, int VEC>
__global__ void fused_residual_layernorm_forward_kernel(T* residual, T* out, float* mean, float* rstd, const T* a,
                                                        const T* b, const T* weight, const T* bias, int N, int C) {
  const int warps_per_block = blockDim.x / WARP_SIZE;
  const int row = blockIdx.x * warps_per_block + threadIdx.x / WARP_SIZE;
  if (row >= N) return;
  const int lane = threadIdx.x % WARP_SIZE;
  const size_t off = (size_t)row * C;
  // Each lane writes its own chunks; the LN passes below read back only those same chunks (no sync needed).
  for (int c = lane * VEC; c < C; c += WARP_SIZE * VEC) {
    const Packed<T, VEC> x = load_packed_cs<VEC>(a + off + c), y = load_packed_cs<VEC>(b + off + c);
    Packed<T, VEC> r;
    for (int k = 0; k < VEC; k++) r[k] = from_float<T>(to_float(x[k]) + to_float(y[k]));
    store_packed<VEC>(residual + off + c, r);
  }
  layernorm_row_warp<T, VEC>(out, mean, rstd, residual + off, weight, bias, row, C, lane);
}

// ---------------------------------------------------------------------------------------------------------
// Backward, pass 1: dinp += rstd·(w·dy − mean(w·dy) − x̂·mean(w·dy·x̂)) for the block's rows, and the block's
// partial dweight (Σ x̂·dy) / dbias (Σ dy) over those rows into partials[blockIdx.x] = [dweight(C) | dbias(C)].
// Dynamic shared memory: 2·C floats. Thread t owns columns t·VEC + j·blockDim·VEC (+0..VEC-1).
template <class T, int VEC>
__global__ void layernorm_backward_kernel(T* dinp, float* partials, const T* dout, const T* inp, const T* weight,
                                          const float* mean, const float* rstd, int N, int C) {
  DYNAMIC_SHARED(float, acc);  // [dweight partial (C) | dbias partial (C)], each entry touched by one thread only
  const int stride = blockDim.x * VEC;
  for (int c = threadIdx.x * VEC; c < C; c += stride)
    for (int k = 0; k < VEC; k++) acc[c + k] = acc[C + c + k] = 0.0f;

  for (int row = blockIdx.x; row < N; row += gridDim.x) {
    const size_t off = (size_t)row * C;
    const float m = mean[row], s = rstd[row];
    float sum_dnorm = 0.0f, sum_dnorm_xhat = 0.0f;
    for (int c = threadIdx.x * VEC; c < C; c += stride) {
      const Packed<T, VEC> dy = load_packed<VEC>(dout + off + c), x = load_packed<VEC>(inp + off + c);
      const Packed<T, VEC> w = load_packed<VEC>(weight + c);
      for (int k = 0; k < VEC; k++) {
        const float dnorm = to_float(w[k]) * to_float(dy[k]);
        sum_dnorm += dnorm;
        sum_dnorm_xhat += dnorm * ((to_float(x[k]) - m) * s);
      }
    }
    const float dnorm_mean = block_sum(sum_dnorm) / C;
    const float dnorm_xhat_mean = block_sum(sum_dnorm_xhat) / C;
    for (int c = threadIdx.x * VEC; c < C; c += stride) {
      const Packed<T, VEC> dy = load_packed<VEC>(dout + off + c), x = load_packed<VEC>(inp + off + c);
      const Packed<T, VEC> w = load_packed<VEC>(weight + c);
      Packed<T, VEC> dx = load_packed<VEC>(dinp + off + c);
      for (int k = 0; k < VEC; k++) {
        const float xhat = (to_float(x[k]) - m) * s, g = to_float(dy[k]);
        dx[k] = from_float<T>(to_float(dx[k]) + s * (to_float(w[k]) * g - dnorm_mean - xhat * dnorm_xhat_mean));
        acc[c + k] += xhat * g;
        acc[C + c + k] += g;
      }
      store_packed<VEC>(dinp + off + c, dx);
    }
  }
  float* mine = partials + (size_t)blockIdx.x * 2 * C;
  for (int c = threadIdx.x * VEC; c < C; c += stride)
    for (int k = 0; k < VEC; k++) {
      mine[c + k] = acc[c + k];
      mine[C + c + k] = acc[C + c + k];
    }
}

// Backward, pass 2: dweight[c] += Σ_blocks partials[blk][c], dbias[c] += Σ_blocks partials[blk][C + c], summed in
// block order (deterministic). One thread per entry of [dweight | dbias].
template <class T>
__global__ void layernorm_backward_reduce_kernel(T* dweight, T* dbias, const float* partials, int num_blocks, int C) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= 2 * C) return;
  float sum = 0.0f;
  for (int blk = 0; blk < num_blocks; blk++) sum += partials[(size_t)blk * 2 * C + j];
  T* dst = j < C ? dweight + j : dbias + (j - C);
  *dst = from_float<T>(to_float(*dst) + sum);
}

// ---------------------------------------------------------------------------------------------------------
// Launchers.

// Block shape for the warp-per-row kernels.
inline int layernorm_forward_blocks(int N, int block_size) { return CEIL_DIV(N, block_size / WARP_SIZE); }

template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int N, int C,
                       cudaStream_t stream, int block_size = 256) {
  if (N == 0) return;
  constexpr int P = Packed128<T>::size;
  const dim3 grid(layernorm_forward_blocks(N, block_size)), block(block_size);
  if (can_pack<T>(C, {out, inp, weight, bias}))
    launch_kernel(layernorm_forward_kernel<T, P>, grid, block, 0, stream, out, mean, rstd, inp, weight, bias, N, C);
  else
    launch_kernel(layernorm_forward_kernel<T, 1>, grid, block, 0, stream, out, mean, rstd, inp, weight, bias, N, C);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void fused_residual_layernorm_forward(T* residual, T* out, float* mean, float* rstd, const T* a, const T* b,
                                      const T* weight, const T* bias, int N, int C, cudaStream_t stream,
                                      int block_size = 256) {
  if (N == 0) return;
  constexpr int P = Packed128<T>::size;
  const dim3 grid(layernorm_forward_blocks(N, block_size)), block(block_size);
  if (can_pack<T>(C, {residual, out, a, b, weight, bias}))
    launch_kernel(fused_residual_layernorm_forward_kernel<T, P>, grid, block, 0, stream, residual, out, mean, rstd, a,
                  b, weight, bias, N, C);
  else
    launch_kernel(fused_residual_layernorm_forward_kernel<T, 1>, grid, block, 0, stream, residual, out, mean, rstd, a,
                  b, weight, bias, N, C);
  CUDA_CHECK(cudaGetLastError());
}

// Backward geometry: at most kLayerNormBwdMaxBlocks blocks (each loops over N/blocks rows); threads cover one
// row's C/VEC chunks, rounded up to whole warps. Fixed for a given (N, C): deterministic.
constexpr int kLayerNormBwdMaxBlocks = 1024;
inline int layernorm_backward_blocks(int N) { return N < kLayerNormBwdMaxBlocks ? N : kLayerNormBwdMaxBlocks; }
// fp32 scratch the backward needs (partials of every block).
inline size_t layernorm_backward_scratch_floats(int N, int C) { return (size_t)layernorm_backward_blocks(N) * 2 * C; }

// dinp += ..., dweight += ..., dbias += ... (all accumulate, like ref::layernorm_backward).
// scratch: layernorm_backward_scratch_floats(N, C) fp32 device floats.
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, float* scratch, const T* dout, const T* inp, const T* weight,
                        const float* mean, const float* rstd, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  constexpr int P = Packed128<T>::size;
  const bool packed = can_pack<T>(C, {dinp, dout, inp, weight});
  const int vec = packed ? P : 1;
  int threads = CEIL_DIV(CEIL_DIV(C, vec), WARP_SIZE) * WARP_SIZE;
  threads = threads < 512 ? threads : 512;
  const int blocks = layernorm_backward_blocks(N);
  const size_t smem = (size_t)2 * C * sizeof(float);
  if (smem > 48 * 1024) {
    fprintf(stderr, "layernorm_backward: C=%d needs %zu bytes of shared memory (max 48 KiB)\n", C, smem);
    abort();
  }
  if (packed)
    launch_kernel(layernorm_backward_kernel<T, P>, dim3(blocks), dim3(threads), smem, stream, dinp, scratch, dout, inp,
                  weight, mean, rstd, N, C);
  else
    launch_kernel(layernorm_backward_kernel<T, 1>, dim3(blocks), dim3(threads), smem, stream, dinp, scratch, dout, inp,
                  weight, mean, rstd, N, C);
  CUDA_CHECK(cudaGetLastError());
  const int reduce_block = 256;
  launch_kernel(layernorm_backward_reduce_kernel<T>, dim3(CEIL_DIV(2 * C, reduce_block)), dim3(reduce_block), 0,
                stream, dweight, dbias, (const float*)scratch, blocks, C);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
