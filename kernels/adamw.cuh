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
// grad_scale folds gradient clipping into the update (1.0f = none).
#pragma once
#include "kernels/common.cuh"

#include <cmath>

namespace kern {

template <class T>
__global__ void adamw_kernel(T* params, float* master, const T* grads, float* m, float* v, size_t n, float lr,
                             float beta1, float beta2, float bias_correction1, float bias_correction2, float eps,
                             float weight_decay, float grad_scale, uint64_t seed, size_t index_offset) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = to_float(grads[i]) * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / bias_correction1, vhat = vi / bias_correction2;
    float p = master ? master[i] : to_float(params[i]);
    p -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    if (master) master[i] = p;
    params[i] = store_rounded<T>(p, rounding_bits(seed, index_offset + i));
  }
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
  const float bias_correction1 = 1.0f - std::pow(beta1, (float)t);  // same expression as ref::adamw_update
  const float bias_correction2 = 1.0f - std::pow(beta2, (float)t);
  launch_kernel(adamw_kernel<T>, dim3(grid_stride_blocks(n, block_size, 1 << 16)), dim3(block_size), 0, stream,
                params, master, grads, m, v, n, lr, beta1, beta2, bias_correction1, bias_correction2, eps, weight_decay,
                grad_scale, seed, index_offset);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
