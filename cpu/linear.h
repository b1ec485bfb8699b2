// linear.h — one linear layer y = x·Wᵀ + b with an optional LoRA branch, forward and backward.
//
// Why a building block of its own: the GPT-2 trunk (cpu/gpt2_model.h) runs its four block linears and the LM head
// through it, and fine-tuning's classification head (cpu/classifier.h) is one more; the low-rank branch
// (alpha/r)·(x·Aᵀ)·Bᵀ of host/finetune_spec.h and the frozen case (no weight gradient work) live here once.
#pragma once

namespace llm {

// A view of one linear layer's tensors. Gradient pointers are nullptr for a frozen tensor: then no gradient work
// is done for it (dw and db are frozen together; db is nullptr without a bias).
struct Linear {
  const float* w = nullptr;  // (out,in)
  const float* b = nullptr;  // (out) or nullptr
  float* dw = nullptr;       // (out,in) or nullptr (frozen)
  float* db = nullptr;       // (out) or nullptr
  int in = 0, out = 0;
  // LoRA adapter (rank > 0): A (rank,in) at lora, B (out,rank) right after it; lora_grad the same layout.
  const float* lora = nullptr;
  float* lora_grad = nullptr;
  int rank = 0;
  float scale = 0.0f;  // alpha / rank
};

// out (N,out) = x (N,in)·Wᵀ + b  [+ scale·h·Bᵀ with h = x·Aᵀ (N,rank) saved in lora_h for the backward]
void linear_forward(float* out, const float* x, int N, const Linear& L, float* lora_h);

// dx (N,in) += dout·W (dx may be nullptr); dW += doutᵀ·x and db += Σ_rows dout unless frozen (accumulate_dw false:
// dW = doutᵀ·x, not read first); with an adapter, dA and dB += their gradients (lora_h: the forward's x·Aᵀ).
void linear_backward(float* dx, const float* dout, const float* x, int N, const Linear& L, const float* lora_h,
                     bool accumulate_dw = true);

}  // namespace llm
