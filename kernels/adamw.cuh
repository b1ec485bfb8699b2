// adamw.cuh — AdamW update with fp32 master weights and stochastic rounding to bf16.
//
// Why: the optimizer state (m, v) and the master copy of the weights are fp32, so small updates are not lost
// to bf16's 8-bit mantissa. The bf16 parameter the model computes with is re-derived from the fp32 master value
// after each step by STOCHASTIC rounding (unbiased: E[bf16] = fp32), with random bits from Philox keyed by
// (seed, element index) — so a run is reproducible and a resumed run can re-derive the same bf16 params.
// fp32 mode writes the exact fp32 value (master may then be nullptr: params ARE the master weights).
// The math is ref::adamw_update's, term for term (bias corrections computed on the host the same way):
//   g = grad·grad_scale; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; m̂ = m/(1-β1ᵗ); v̂ = v/(1-β2ᵗ)
//   p -= lr · (m̂ / (sqrt(v̂) + eps) + weight_decay · p)
// grad_scale folds gradient clipping into the update (1.0f = none). adamw_update_device takes the step's scalars from
// device memory (CUDA graph replay).
#pragma once
#include "kernels/common.cuh"

#include <cmath>

namespace kern {

// The per-step scalars of an update: by value (adamw_update), or in device memory (adamw_update_device: written by
// the host or a kernel before the launch, so that the launch can be captured once into a CUDA graph and replayed
// every step with the new values).
struct AdamWStep {
  float lr, bias_correction1, bias_correction2, grad_scale;
  int skip;  // adamw_update_device: nonzero leaves everything as it is (a non-finite gradient norm)
};

template <class T>
__device__ inline void adamw_range(T* params, float* master, const T* grads, float* m, float* v, size_t n,
                                   const AdamWStep& s, float beta1, float beta2, float eps, float weight_decay,
                                   uint64_t seed, size_t index_offset) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = to_float(grads[i]) * s.grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / s.bias_correction1, vhat = vi / s.bias_correction2;
    float p = master ? master[i] : to_float(params[i]);
    p -= s.lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    if (master) master[i] = p;
    params[i] = store_rounded<T>(p, rounding_bits(seed, index_offset + i));
  }
}

template <class T>
__global__ void adamw_kernel(T* params, float* master, const T* grads, float* m, float* v, size_t n, AdamWStep s,
                             float beta1, float beta2, float eps, float weight_decay, uint64_t seed,
                             size_t index_offset) {
  adamw_range(params, master, grads, m, v, n, s, beta1, beta2, eps, weight_decay, seed, index_offset);
}

template <class T>
__global__ void adamw_device_kernel(T* params, float* master, const T* grads, float* m, float* v, size_t n,
                                    const AdamWStep* s, float beta1, float beta2, float eps, float weight_decay,
                                    const uint64_t* seed, size_t index_offset) {
  if (s->skip) return;
  const AdamWStep step = *s;
  adamw_range(params, master, grads, m, v, n, step, beta1, beta2, eps, weight_decay, *seed, index_offset);
}

// The bias corrections of step t (1-based), ref::adamw_update's expression.
inline AdamWStep adamw_step(float lr, float beta1, float beta2, int t, float grad_scale = 1.0f) {
  return AdamWStep{lr, 1.0f - std::pow(beta1, (float)t), 1.0f - std::pow(beta2, (float)t), grad_scale, 0};
}

// t is the 1-based step. `seed` keys the stochastic rounding (derive it from the run seed, t and — when tensors are
// updated by separate launches — the tensor id, e.g. with llm::splitmix64, so each step/tensor rounds independently
// yet reproducibly; element i of a launch uses rounding_bits(seed, index_offset + i)); unused for fp32.
// index_offset: where this launch starts inside the tensor the seed belongs to, so that updating a tensor in
// pieces (ZeRO-1: each rank owns a slice) rounds every element exactly as one whole-tensor launch would.
template <class T>
void adamw_update(T* params, float* master, const T* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t, uint64_t seed, cudaStream_t stream,
                  float grad_scale = 1.0f, int block_size = 512, size_t index_offset = 0) {
  if (n == 0) return;
  launch_kernel(adamw_kernel<T>, dim3(grid_stride_blocks(n, block_size, 1 << 16)), dim3(block_size), 0, stream,
                params, master, grads, m, v, n, adamw_step(lr, beta1, beta2, t, grad_scale), beta1, beta2, eps,
                weight_decay, seed, index_offset);
  CUDA_CHECK(cudaGetLastError());
}

// adamw_update with lr, bias corrections, grad_scale and skip read from `step` and the rounding seed from `seed`
// (device memory) when the kernel runs: the same arithmetic, bit for bit.
template <class T>
void adamw_update_device(T* params, float* master, const T* grads, float* m, float* v, size_t n,
                         const AdamWStep* step, float beta1, float beta2, float eps, float weight_decay,
                         const uint64_t* seed, cudaStream_t stream, int block_size = 512, size_t index_offset = 0) {
  if (n == 0) return;
  launch_kernel(adamw_device_kernel<T>, dim3(grid_stride_blocks(n, block_size, 1 << 16)), dim3(block_size), 0,
                stream, params, master, grads, m, v, n, step, beta1, beta2, eps, weight_decay, seed, index_offset);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
