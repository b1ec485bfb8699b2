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
//   (TY rows in flight, then the next TY·grid rows, ...) and each thread owns fixed columns of its row lane,
//   accumulating their partial dweight/dbias in shared memory. Blocks write their partials to an fp32 scratch
//   (grid, 2C); a second kernel sums the blocks in order and adds into dweight/dbias. The per-row reductions
//   for dinp use a fixed tree. The geometry depends only on (N, C, packing): bitwise reproducible.
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
// Backward, pass 1. Block = (TX, TY): TX threads (whole warps) span one row's C/VEC chunks, TY rows are in flight
// at once (row = (blockIdx.x + k·gridDim.x)·TY + threadIdx.y). Per row: dinp += rstd·(w·dy − mean(w·dy) −
// x̂·mean(w·dy·x̂)). Each (threadIdx.y, column) has its own fp32 accumulator of dweight (Σ x̂·dy) and dbias (Σ dy)
// in shared memory, touched by one thread only; at the end the TY accumulators are summed in y order into
// partials[blockIdx.x] = [dweight(C) | dbias(C)]. Dynamic shared memory: TY·2·C floats.
template <class T, int VEC>
__global__ void layernorm_backward_kernel(T* dinp, float* partials, const T* dout, const T* inp, const T* weight,
                                          const float* mean, const float* rstd, int N, int C) {
  DYNAMIC_SHARED(float, acc);             // [TY][dweight (C) | dbias (C)]
  __shared__ float group_partial[2][32];  // per-warp sums of the two row reductions
  const int TX = blockDim.x, TY = blockDim.y, x = threadIdx.x, y = threadIdx.y;
  const int warps_per_row = TX / WARP_SIZE, warp = (y * TX + x) / WARP_SIZE, lane = x % WARP_SIZE;
  float* my_acc = acc + (size_t)y * 2 * C;
  const int stride = TX * VEC;
  for (int c = x * VEC; c < C; c += stride)
    for (int k = 0; k < VEC; k++) my_acc[c + k] = my_acc[C + c + k] = 0.0f;

  // Every thread runs the same number of iterations (rows past N just contribute nothing), so the block
  // barriers inside are reached uniformly.
  for (int row0 = blockIdx.x * TY; row0 < N; row0 += gridDim.x * TY) {
    const int row = row0 + y;
    const bool valid = row < N;
    const size_t off = (size_t)row * C;
    const float m = valid ? mean[row] : 0.0f, s = valid ? rstd[row] : 0.0f;
    float sum_dnorm = 0.0f, sum_dnorm_xhat = 0.0f;
    for (int c = x * VEC; valid && c < C; c += stride) {
      const Packed<T, VEC> dy = load_packed<VEC>(dout + off + c), xv = load_packed<VEC>(inp + off + c);
      const Packed<T, VEC> w = load_packed<VEC>(weight + c);
      for (int k = 0; k < VEC; k++) {
        const float dnorm = to_float(w[k]) * to_float(dy[k]);
        sum_dnorm += dnorm;
        sum_dnorm_xhat += dnorm * ((to_float(xv[k]) - m) * s);
      }
    }
    // sum over the TX threads of this row: warp tree, then this row's warps in order
    sum_dnorm = warp_sum(sum_dnorm);
    sum_dnorm_xhat = warp_sum(sum_dnorm_xhat);
    if (lane == 0) {
      group_partial[0][warp] = sum_dnorm;
      group_partial[1][warp] = sum_dnorm_xhat;
    }
    __syncthreads();
    sum_dnorm = sum_dnorm_xhat = 0.0f;
    for (int w = y * warps_per_row; w < (y + 1) * warps_per_row; w++) {
      sum_dnorm += group_partial[0][w];
      sum_dnorm_xhat += group_partial[1][w];
    }
    __syncthreads();  // group_partial is rewritten in the next iteration
    const float dnorm_mean = sum_dnorm / C, dnorm_xhat_mean = sum_dnorm_xhat / C;
    for (int c = x * VEC; valid && c < C; c += stride) {
      const Packed<T, VEC> dy = load_packed<VEC>(dout + off + c), xv = load_packed<VEC>(inp + off + c);
      const Packed<T, VEC> w = load_packed<VEC>(weight + c);
      Packed<T, VEC> dx = load_packed<VEC>(dinp + off + c);
      for (int k = 0; k < VEC; k++) {
        const float xhat = (to_float(xv[k]) - m) * s, g = to_float(dy[k]);
        dx[k] = from_float<T>(to_float(dx[k]) + s * (to_float(w[k]) * g - dnorm_mean - xhat * dnorm_xhat_mean));
        my_acc[c + k] += xhat * g;
        my_acc[C + c + k] += g;
      }
      store_packed<VEC>(dinp + off + c, dx);
    }
  }
  __syncthreads();  // all TY accumulators complete
  float* mine = partials + (size_t)blockIdx.x * 2 * C;
  for (int j = y * TX + x; j < 2 * C; j += TX * TY) {
    float sum = 0.0f;
    for (int r = 0; r < TY; r++) sum += acc[(size_t)r * 2 * C + j];
    mine[j] = sum;
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

// Backward geometry, fixed for a given (N, C, packing), hence deterministic: TX = the row's C/VEC chunks rounded up
// to whole warps (at most 512; threads then loop), TY = rows in flight per block (~512 threads per block, TY·2·C
// floats of shared memory within 48 KiB), at most kLayerNormBwdMaxBlocks blocks looping over the rows.
constexpr int kLayerNormBwdMaxBlocks = 1024;
struct LayerNormBwdGeometry {
  int tx, ty, blocks;
};
inline LayerNormBwdGeometry layernorm_backward_geometry(int N, int C, int vec, int max_blocks) {
  LayerNormBwdGeometry g;
  g.tx = CEIL_DIV(CEIL_DIV(C, vec), WARP_SIZE) * WARP_SIZE;
  if (g.tx > 512) g.tx = 512;
  g.ty = 512 / g.tx;
  const int smem_rows = (48 * 1024) / (2 * C * (int)sizeof(float));
  if (g.ty > smem_rows) g.ty = smem_rows;
  if (g.ty < 1) g.ty = 1;
  g.blocks = CEIL_DIV(N, g.ty);
  if (g.blocks > max_blocks) g.blocks = max_blocks;
  return g;
}
// fp32 scratch the backward needs (partials of every block; an upper bound for any packing).
inline size_t layernorm_backward_scratch_floats(int N, int C) {
  return (size_t)(N < kLayerNormBwdMaxBlocks ? N : kLayerNormBwdMaxBlocks) * 2 * C;
}

// dinp += ..., dweight += ..., dbias += ... (all accumulate, like ref::layernorm_backward).
// scratch: layernorm_backward_scratch_floats(N, C) fp32 device floats. max_blocks (1..kLayerNormBwdMaxBlocks): lower
// it only to make tests exercise blocks that loop over many rows.
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, float* scratch, const T* dout, const T* inp, const T* weight,
                        const float* mean, const float* rstd, int N, int C, cudaStream_t stream,
                        int max_blocks = kLayerNormBwdMaxBlocks) {
  if (N == 0 || C == 0) return;
  constexpr int P = Packed128<T>::size;
  const bool packed = can_pack<T>(C, {dinp, dout, inp, weight});
  const LayerNormBwdGeometry g = layernorm_backward_geometry(N, C, packed ? P : 1, max_blocks < 1 ? 1 : max_blocks < kLayerNormBwdMaxBlocks ? max_blocks : kLayerNormBwdMaxBlocks);
  const size_t smem = (size_t)g.ty * 2 * C * sizeof(float);
  if (smem > 48 * 1024) {
    fprintf(stderr, "layernorm_backward: C=%d needs %zu bytes of shared memory (max 48 KiB)\n", C, smem);
    abort();
  }
  if (packed)
    launch_kernel(layernorm_backward_kernel<T, P>, dim3(g.blocks), dim3(g.tx, g.ty), smem, stream, dinp, scratch, dout,
                  inp, weight, mean, rstd, N, C);
  else
    launch_kernel(layernorm_backward_kernel<T, 1>, dim3(g.blocks), dim3(g.tx, g.ty), smem, stream, dinp, scratch, dout,
                  inp, weight, mean, rstd, N, C);
  CUDA_CHECK(cudaGetLastError());
  const int reduce_block = 256;
  launch_kernel(layernorm_backward_reduce_kernel<T>, dim3(CEIL_DIV(2 * C, reduce_block)), dim3(reduce_block), 0,
                stream, dweight, dbias, (const float*)scratch, g.blocks, C);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
