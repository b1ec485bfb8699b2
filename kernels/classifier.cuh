// classifier.cuh — fused softmax + cross-entropy + dlogits over the vocabulary, with ignore index -100.
//
// Why: the logits (N, Vp) are the largest activation of GPT-2 (8192 × 50304 floats at B=8, T=1024). Fusing
// softmax, loss and its gradient reads them twice and writes the gradient IN PLACE over them, and never
// materialises the probabilities (llm.c's fused_classifier idea).
// One block per row:
//   pass 1: each thread keeps an online (max, sum of exp) over its strided columns < V; a block reduction
//           combines them into the row's max and normaliser. Thread 0 read logit[target] before any write.
//   pass 2: dlogits = (softmax − onehot(target)) · dloss for columns < V, 0 for padding columns V..Vp-1.
// Strided loops over 16-byte chunks (when Vp and the pointer allow; else single columns): correct for any V ≤ Vp
// and any block size (no "V ≥ blockDim × pack" assumption). dev/cuda/classifier.cu v3 (v2 was one scalar 2-byte
// load in flight per thread).
// Ignored rows (target == -100, or any target outside [0, V)) get loss 0 and an all-zero gradient row.
// The loss is a mean over valid rows: dloss = dloss_scale / num_valid, where num_valid is COUNTED ON DEVICE by
// classifier_count_valid_kernel (so no host sync is needed); dloss_scale is e.g. 1/grad_accum_steps.
// losses[row] is written (=), not accumulated; classifier_mean_loss computes the mean on device.
#pragma once
#include "cuda_cpu/compat.cuh"
#include "kernels/common.cuh"
#include "host/error.h"

namespace kern {

// Number of targets in [0, V) (the rest are ignored). Single block, fixed-order reduction: deterministic.
template <typename Unused = void>  // a template so the header can be included in several TUs
__global__ void classifier_count_valid_kernel(int* count, const int* targets, int N, int V) {
  float c = 0.0f;  // counts stay exact in fp32 up to 2^24 rows
  for (int i = threadIdx.x; i < N; i += blockDim.x) c += (targets[i] >= 0 && targets[i] < V) ? 1.0f : 0.0f;
  c = block_sum(c);
  if (threadIdx.x == 0) *count = (int)c;
}

// VEC columns per access: 16-byte loads (8 bf16 / 4 fp32) when the rows allow it, else 1. A chunk may straddle
// V (GPT-2: V=50257 is odd); only its columns < V enter the softmax. Pass 1 issues kUnroll chunk loads per thread
// before using any, so each thread has kUnroll·16 bytes in flight (one scalar load before). Each chunk's max
// updates the running (max, sum) once, then its elements add exp(v − max): one rescale per chunk, not per column.
constexpr int kClsUnroll = 2;

template <typename floatX, int VEC>
__device__ inline void classifier_chunk_stats(const Packed<floatX, VEC>& p, int col0, int V, float* m, float* s) {
  float cm = -INFINITY;
  for (int k = 0; k < VEC; k++)
    if (col0 + k < V) cm = fmaxf(cm, to_float(p[k]));
  if (cm > *m) {
    *s *= expf(*m - cm);  // *m == -inf: *s is 0 and expf(-inf) == 0
    *m = cm;
  }
  for (int k = 0; k < VEC; k++)
    if (col0 + k < V) *s += expf(to_float(p[k]) - *m);
}

template <typename floatX, int VEC>
__global__ void fused_classifier_kernel(floatX* logits, float* losses, const int* targets, const int* valid_count,
                                        float dloss_scale, int V, int Vp, int write_dlogits) {
  const int row = blockIdx.x;
  floatX* x = logits + (size_t)row * Vp;
  const int target = targets[row];
  const bool valid = target >= 0 && target < V;
  // thread 0 reads the target logit now; the barriers inside block_max/block_sum order it before pass 2 writes
  const float x_target = valid && threadIdx.x == 0 ? to_float(x[target]) : 0.0f;

  // pass 1: per-thread online max / sum of exp over the thread's strided chunks (those with a column < V)
  const int nchunks = (V + VEC - 1) / VEC, stride = blockDim.x;
  float m = -INFINITY, s = 0.0f;
  for (int c0 = threadIdx.x; c0 < nchunks; c0 += kClsUnroll * stride) {
    Packed<floatX, VEC> p[kClsUnroll];
    for (int u = 0; u < kClsUnroll; u++)  // all loads first: kClsUnroll in flight
      if (c0 + u * stride < nchunks) p[u] = load_packed<VEC>(x + (size_t)(c0 + u * stride) * VEC);
    for (int u = 0; u < kClsUnroll; u++)
      if (c0 + u * stride < nchunks) classifier_chunk_stats<floatX, VEC>(p[u], (c0 + u * stride) * VEC, V, &m, &s);
  }
  const float row_max = block_max(m);
  const float row_sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - row_max));  // rescale to the row max
  const float inv_sum = 1.0f / row_sum;

  if (threadIdx.x == 0) losses[row] = valid ? -(x_target - row_max - logf(row_sum)) : 0.0f;
  if (!write_dlogits) return;
  const int nvalid = *valid_count;
  const float dloss = (valid && nvalid > 0) ? dloss_scale / (float)nvalid : 0.0f;
  // pass 2 over every chunk < Vp: each thread rewrites exactly the chunks it read (a chunk of padding columns
  // only is written, not read), so no barrier is needed between read and write. Last use: streaming accesses.
  for (int c = threadIdx.x; c < Vp / VEC; c += stride) {
    const int col0 = c * VEC;
    const Packed<floatX, VEC> in = load_packed_cs<VEC>(x + col0);
    Packed<floatX, VEC> out;
    for (int k = 0; k < VEC; k++) {
      float g = 0.0f;
      if (col0 + k < V && valid) {
        const float p = expf(to_float(in[k]) - row_max) * inv_sum;
        g = (p - (col0 + k == target ? 1.0f : 0.0f)) * dloss;
      }
      out[k] = from_float<floatX>(g);
    }
    store_packed_cs<VEC>(x + col0, out);
  }
}

// mean_loss[0] = Σ losses / num_valid (0 if none valid). Single block, fixed order: deterministic.
template <typename Unused = void>
__global__ void classifier_mean_loss_kernel(float* mean_loss, const float* losses, const int* valid_count, int N) {
  float s = 0.0f;
  for (int i = threadIdx.x; i < N; i += blockDim.x) s += losses[i];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    const int n = *valid_count;
    *mean_loss = n > 0 ? s / (float)n : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Host launchers. valid_count: one device int (scratch), written here and read by the kernels.

// Fused forward+backward: losses(N) = per-row loss, logits(N,Vp) overwritten by dlogits when write_dlogits.
// dloss_scale multiplies the mean's derivative 1/num_valid (pass 1.0f for a single micro-step).
template <typename floatX>
void fused_classifier(floatX* logits, float* losses, const int* targets, int* valid_count, int N, int V, int Vp,
                      float dloss_scale, bool write_dlogits, cudaStream_t stream, int block_size = 256) {
  if (N <= 0) return;
  if (block_size <= 0 || block_size > 1024 || block_size % 32 != 0)
    llm::fail("fused_classifier: block_size ", block_size, " must be a multiple of 32 in [32, 1024]");
  if (V <= 0 || V > Vp) llm::fail("fused_classifier: need 0 < V <= Vp, got V=", V, " Vp=", Vp);
  launch_kernel(classifier_count_valid_kernel<void>, dim3(1), dim3(256), 0, stream, valid_count, targets, N, V);
  CUDA_CHECK(cudaGetLastError());
  constexpr int P = Packed128<floatX>::size;
  if (can_pack<floatX>(Vp, {logits}))
    launch_kernel(fused_classifier_kernel<floatX, P>, dim3(N), dim3(block_size), 0, stream, logits, losses, targets,
                  (const int*)valid_count, dloss_scale, V, Vp, write_dlogits ? 1 : 0);
  else
    launch_kernel(fused_classifier_kernel<floatX, 1>, dim3(N), dim3(block_size), 0, stream, logits, losses, targets,
                  (const int*)valid_count, dloss_scale, V, Vp, write_dlogits ? 1 : 0);
  CUDA_CHECK(cudaGetLastError());
}

// mean_loss: one device float. Call after fused_classifier (uses its valid_count).
inline void classifier_mean_loss(float* mean_loss, const float* losses, const int* valid_count, int N,
                                 cudaStream_t stream) {
  launch_kernel(classifier_mean_loss_kernel<void>, dim3(1), dim3(256), 0, stream, mean_loss, losses, valid_count, N);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
