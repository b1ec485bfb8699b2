// cls_head.cuh — the fine-tuning classification head: last-token gather, C → N head, N-class cross-entropy, and
// the way back (gradient scattered to position T-1 only). Plus the LoRA branch's elementwise helpers.
//
// Why: a classifier reads only the LAST position of each sequence (causal attention lets it see the whole text),
// so the head is a tiny (B,C)·(N,C)ᵀ product instead of the LM head's (B·T,C)·(Vp,C)ᵀ. The pieces:
//   last_token_gather  last(B,C) = lnf[b, T-1, :]
//   the head matmul    logits(B,N) = last·Wᵀ + b: kern::matmul_forward (its tiled kernel masks any N ≥ 1; cuBLASLt
//                      declines N % 8 != 0 and the own kernel runs)
//   cross-entropy      over N classes: kern::fused_classifier with V = Vp = N (labels -100 ignored, mean loss,
//                      dlogits in place) on a copy, so the logits themselves stay readable for predictions
//   last_token_scatter dlnf(B,T,C) = 0 except row T-1 = dlast (OVERWRITES: frozen blocks below see exact zeros)
// LoRA (y += s·(x·Aᵀ)·Bᵀ): scaled_add out += s·x, and scale out = s·x, in fp32 per element.
#pragma once
#include "cuda_cpu/compat.cuh"
#include "kernels/classifier.cuh"
#include "kernels/common.cuh"
#include "kernels/matmul.cuh"

namespace kern {

// last(B,C) = inp(B,T,C)[:, T-1, :]
template <class T>
__global__ void last_token_gather_kernel(T* last, const T* inp, int B, int Tn, int C) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= (size_t)B * C) return;
  const size_t b = i / C, c = i % C;
  last[i] = inp[(b * Tn + Tn - 1) * C + c];
}

// dinp(B,T,C) = 0, except dinp[:, T-1, :] = dlast(B,C)
template <class T>
__global__ void last_token_scatter_kernel(T* dinp, const T* dlast, int B, int Tn, int C) {
  const size_t n = (size_t)B * Tn * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t c = i % C, bt = i / C, b = bt / Tn, t = bt % Tn;
    dinp[i] = t == (size_t)Tn - 1 ? dlast[b * C + c] : from_float<T>(0.0f);
  }
}

// out[i] = out[i] + s·x[i]   (accumulate = 1)   or   out[i] = s·x[i]   (accumulate = 0)
template <class T>
__global__ void scaled_add_kernel(T* out, const T* x, float s, size_t n, int accumulate) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float v = s * to_float(x[i]);
    out[i] = from_float<T>(accumulate ? to_float(out[i]) + v : v);
  }
}

// ---- launchers ----

template <class T>
void last_token_gather(T* last, const T* inp, int B, int Tn, int C, cudaStream_t stream) {
  const size_t n = (size_t)B * C;
  if (n == 0) return;
  launch_kernel(last_token_gather_kernel<T>, dim3(CEIL_DIV(n, (size_t)256)), dim3(256), 0, stream, last, inp, B, Tn, C);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void last_token_scatter(T* dinp, const T* dlast, int B, int Tn, int C, cudaStream_t stream) {
  const size_t n = (size_t)B * Tn * C;
  if (n == 0) return;
  launch_kernel(last_token_scatter_kernel<T>, dim3(grid_stride_blocks(n, 256)), dim3(256), 0, stream, dinp, dlast, B,
                Tn, C);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void scaled_add(T* out, const T* x, float s, size_t n, bool accumulate, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(scaled_add_kernel<T>, dim3(grid_stride_blocks(n, 256)), dim3(256), 0, stream, out, x, s, n,
                accumulate ? 1 : 0);
  CUDA_CHECK(cudaGetLastError());
}

// The whole head forward: last(B,C) gathered, logits(B,N) = last·Wᵀ + bias; with labels (device, B ints) also
// losses(B), mean_loss[0] and dlogits(B,N) = d(mean CE)/d(logits) (valid: one device int of scratch).
template <class T>
void cls_head_forward(T* logits, T* last, T* dlogits, float* losses, float* mean_loss, int* valid, const T* lnf,
                      const T* w, const T* bias, const int* labels, int B, int Tn, int C, int N, cudaStream_t stream) {
  last_token_gather(last, lnf, B, Tn, C, stream);
  matmul_forward(logits, (T*)nullptr, last, w, bias, B, C, N, stream);
  if (!labels) return;
  CUDA_CHECK(cudaMemcpyAsync(dlogits, logits, (size_t)B * N * sizeof(T), cudaMemcpyDeviceToDevice, stream));
  fused_classifier(dlogits, losses, labels, valid, B, N, N, 1.0f, true, stream);
  classifier_mean_loss(mean_loss, losses, valid, B, stream);
}

// The head backward: dlast(B,C) = dlogits·W, dW(N,C) += dlogitsᵀ·last and dbias(N) += Σ_b dlogits (each skipped
// when nullptr: a frozen head), dlnf(B,T,C) = dlast at T-1, 0 elsewhere. scratch: matmul_backward_scratch_floats(B, N).
template <class T>
void cls_head_backward(T* dlnf, T* dlast, T* dw, T* dbias, float* scratch, const T* dlogits, const T* last, const T* w,
                       int B, int Tn, int C, int N, cudaStream_t stream) {
  matmul_backward(dlast, dw, dbias, dlogits, last, w, (const T*)nullptr, scratch, B, C, N, stream);
  last_token_scatter(dlnf, dlast, B, Tn, C, stream);
}

}  // namespace kern
