// ops.h — the fp32 reference ops of GPT-2 (forward and backward), plain C++17 + OpenMP.
//
// Why: these are the ground truth every CUDA kernel is tested against, so each reads like the math.
// Conventions:
//   * row-major; B batch, T time, C channels, NH heads, hs = C/NH, V real vocab, Vp padded vocab,
//     N = number of rows (usually B*T), OC output channels.
//   * every backward ACCUMULATES (+=) into its gradient outputs (zero them first, or accumulate micro-steps).
//   * deterministic for a given OpenMP thread count: no atomics, every reduction has a fixed order.
//   * dropout masks come from host/philox.h (element index documented per op), so GPU kernels can
//     reproduce them exactly.
#pragma once
#include <cstddef>
#include <cstdint>

#include "host/philox.h"

namespace ref {

// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
void encoder_forward(float* out /*(B,T,C)*/, const int* inp /*(B,T)*/, const float* wte /*(Vp,C)*/,
                     const float* wpe /*(maxT,C)*/, int B, int T, int C);
void encoder_backward(float* dwte /*(Vp,C)*/, float* dwpe /*(maxT,C)*/, const float* dout /*(B,T,C)*/,
                      const int* inp /*(B,T)*/, int B, int T, int C);

// y = (x - mean) * rstd * weight + bias per row; eps 1e-5, biased variance. mean/rstd are saved for backward.
void layernorm_forward(float* out /*(N,C)*/, float* mean /*(N)*/, float* rstd /*(N)*/, const float* inp /*(N,C)*/,
                       const float* weight /*(C)*/, const float* bias /*(C)*/, int N, int C);
void layernorm_backward(float* dinp /*(N,C)*/, float* dweight /*(C)*/, float* dbias /*(C)*/, const float* dout /*(N,C)*/,
                        const float* inp /*(N,C)*/, const float* weight /*(C)*/, const float* mean /*(N)*/,
                        const float* rstd /*(N)*/, int N, int C);

// out = inp · weightᵀ + bias  (nn.Linear)
void matmul_forward(float* out /*(N,OC)*/, const float* inp /*(N,C)*/, const float* weight /*(OC,C)*/,
                    const float* bias /*(OC) or nullptr*/, int N, int C, int OC);
// dinp += dout · weight; dweight += doutᵀ · inp; dbias += Σ_rows dout. dinp may be nullptr (not needed).
// accumulate_dweight = false writes dweight = doutᵀ · inp instead (it is not read; the one exception to +=).
void matmul_backward(float* dinp /*(N,C)*/, float* dweight /*(OC,C)*/, float* dbias /*(OC) or nullptr*/,
                     const float* dout /*(N,OC)*/, const float* inp /*(N,C)*/, const float* weight /*(OC,C)*/,
                     int N, int C, int OC, bool accumulate_dweight = true);

// Causal multi-head self-attention, scale 1/sqrt(hs). qkv row = [q | k | v], head h at columns h*hs.. of each.
// att holds the softmax probabilities BEFORE dropout (entries t2 > t are 0). Dropout on attention weights uses
// element index ((b*NH+h)*T+t)*T+t2 in drop.stream.
void attention_forward(float* out /*(B,T,C)*/, float* att /*(B,NH,T,T)*/, const float* qkv /*(B,T,3C)*/,
                       int B, int T, int C, int NH, const llm::DropoutSpec& drop);
void attention_backward(float* dqkv /*(B,T,3C)*/, const float* dout /*(B,T,C)*/, const float* qkv /*(B,T,3C)*/,
                        const float* att /*(B,NH,T,T)*/, int B, int T, int C, int NH, const llm::DropoutSpec& drop);

// GELU, tanh approximation: 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))
void gelu_forward(float* out, const float* inp, size_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);

// out = a + b
void residual_forward(float* out, const float* a, const float* b, size_t n);
void residual_backward(float* da, float* db, const float* dout, size_t n);

// Inverted dropout: out[i] = keep(i) ? inp[i] / (1-p) : 0, element index i. Identity when p == 0.
void dropout_forward(float* out, const float* inp, size_t n, const llm::DropoutSpec& drop);
void dropout_backward(float* dinp, const float* dout, size_t n, const llm::DropoutSpec& drop);

// probs = softmax(logits[:, :V]) (padding columns V..Vp-1 set to 0); losses[i] = -log probs[i, targets[i]],
// 0 where targets[i] == -100. Returns the mean loss over non-ignored rows (0 if all ignored).
float softmax_crossentropy_forward(float* losses /*(N)*/, float* probs /*(N,Vp)*/, const float* logits /*(N,Vp)*/,
                                   const int* targets /*(N)*/, int N, int V, int Vp);
// dlogits += (probs - onehot(target)) · dloss for real columns; ignored rows and padding columns get 0 added.
// dloss is usually 1/num_valid (the mean's derivative). accumulate = false writes dlogits = ... instead (ignored
// rows and padding columns become 0), so the caller need not clear the (N,Vp) buffer first.
void softmax_crossentropy_backward(float* dlogits /*(N,Vp)*/, const float* probs /*(N,Vp)*/, const int* targets /*(N)*/,
                                   int N, int V, int Vp, float dloss, bool accumulate = true);

// AdamW with bias correction and decoupled weight decay (t is 1-based):
//   m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; m̂ = m/(1-β1ᵗ); v̂ = v/(1-β2ᵗ)
//   param -= lr · (m̂ / (sqrt(v̂) + eps) + weight_decay · param)
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int t);

// sqrt(Σ g²), deterministic: fixed-size blocks summed in double, block sums added in order.
double global_grad_norm(const float* grads, size_t n);
// grads *= max_norm / norm when norm > max_norm (llm.c convention; no epsilon).
void clip_gradients(float* grads, size_t n, float max_norm, double norm);

// ---- additions beyond the agreed list ----
// adamw_update on grads·grad_scale (clipping fused into the update; bit-identical to scaling grads first).
void adamw_update_scaled(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                         float beta2, float eps, float weight_decay, int t, float grad_scale);
// grads *= scale (used for PyTorch-style clipping, scale = max_norm / (norm + 1e-6)).
void scale_inplace(float* x, size_t n, float scale);

}  // namespace ref
