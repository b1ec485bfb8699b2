// classifier.h — GPT-2 fine-tuning on the CPU (the book's chapters 6 and 7, appendix E): a classification head
// or the LM head, a chosen trainable subset, and optional LoRA adapters on every linear layer.
//
// Why a separate model class (instead of GPT2Model): fine-tuning changes what the model computes (a C → N head
// read at the LAST position only, low-rank branches on every linear) and which gradients exist (frozen tensors
// get no gradient work at all, blocks below the lowest trainable one are not even back-propagated). It reuses
// the reference ops (cpu/ops.h) and the llm.c parameter layout (host/gpt2_config.h), so a pretrained
// checkpoint loads as-is. Dropout is not applied (the book fine-tunes with drop_rate 0).
//
// The modes, the LoRA parametrisation and the spec rules: host/finetune_spec.h.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "host/finetune_spec.h"
#include "host/gpt2_config.h"

namespace llm {

class FinetuneGPT2 {
 public:
  // params: num_parameters(config) floats (a pretrained checkpoint). Throws llm::Error for a bad spec
  // (rank < 0 or rank > 0 with alpha <= 0, num_classes == 1 or < 0, train_from_layer out of range).
  FinetuneGPT2(const GPT2Config& config, std::vector<float> params, const FinetuneSpec& spec);

  const GPT2Config& config() const { return c_; }
  const FinetuneSpec& spec() const { return spec_; }
  int num_classes() const { return spec_.num_classes; }

  // Classification forward: inputs (B,T), labels (B) or nullptr. Returns the mean loss (or -1 without labels);
  // class_logits() holds (B,N).
  float forward_classify(const int* inputs, const int* labels, int B, int T);
  // LM forward: inputs (B,T), targets (B,T) with -100 = ignore, or nullptr. Returns the mean loss over valid
  // targets (-1 without targets); lm_logits() holds (B,T,Vp).
  float forward_lm(const int* inputs, const int* targets, int B, int T);
  // Accumulates d(loss)/dθ for the trainable tensors only (requires the last forward to have had labels/targets).
  void backward();
  void zero_grad();
  // AdamW (the book's torch.optim.AdamW: betas (0.9, 0.999), eps 1e-8, decay on every trainable tensor) on the
  // trainable tensors only; t is the 1-based step.
  void adamw_step(float lr, float weight_decay, int t, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f);

  const float* class_logits() const { return logits_.data(); }  // (B,N) of the last forward_classify
  const float* lm_logits() const { return logits_.data(); }     // (B,T,Vp) of the last forward_lm
  int predict(int b) const;                                      // argmax of class_logits row b

  // Parameters and gradients. grad_* are nullptr for frozen tensors (no gradient memory or work).
  float* base() { return params_.data(); }
  const float* base() const { return params_.data(); }
  float* base_tensor(ParamTensor k) { return params_.data() + off_[k]; }
  const float* base_grad(ParamTensor k) const;  // whole tensor k; nullptr unless some part of it is trainable
  float* head_weight() { return head_w_.data(); }  // (N,C), classification only
  float* head_bias() { return head_b_.data(); }    // (N)
  const float* head_weight_grad() const { return head_trainable() ? head_dw_.data() : nullptr; }
  const float* head_bias_grad() const { return head_trainable() ? head_db_.data() : nullptr; }
  bool tensor_trainable(ParamTensor k, int layer = 0) const;  // layer: for per-block tensors
  size_t num_trainable() const;

  // LoRA adapters of block linear `kind` in `layer` (layer = L, kind = 0 for the head).
  float* lora_a(int layer, int kind);        // (r, in)
  float* lora_b(int layer, int kind);        // (out, r)
  const float* lora_a_grad(int layer, int kind) const;
  const float* lora_b_grad(int layer, int kind) const;

  // Folds W += (alpha/r)·B·A into every base weight (and head) and drops the adapters (rank becomes 0; the base
  // stays frozen). For a tied LM head the merged head cannot share wte any more: the model becomes untied
  // (config().tied_head false, an lm_head tensor appended).
  void merge_lora();

 private:
  struct Lin {  // one linear layer: weight (out,in), bias (out) or null; trainability; LoRA slot
    float* w; float* b; float* dw; float* db; int in, out; int lora;  // lora: slot index or -1
  };
  Lin block_linear(int layer, int kind);
  Lin head_linear();
  bool head_trainable() const { return spec_.lora_rank == 0 && spec_.train_head; }
  void linear_forward(float* out, const float* x, int N, const Lin& L, float* lora_h);
  void linear_backward(float* dx, const float* dout, const float* x, int N, const Lin& L, const float* lora_h);
  void forward_trunk(const int* inputs, int B, int T);
  void backward_trunk(const float* dlnf);
  int lowest_backprop_layer() const;
  void allocate(int B, int T);

  GPT2Config c_;
  FinetuneSpec spec_;
  std::array<size_t, kNumParamTensors> off_{}, size_{};
  std::vector<float> params_, grads_;             // base, llm.c layout; grads_ sized like params_ when needed
  std::vector<float> head_w_, head_b_, head_dw_, head_db_;
  // LoRA: slot s has A at lora_off_[s] (r*in) followed by B (out*r)
  std::vector<float> lora_, lora_grads_, lora_m_, lora_v_;
  std::vector<size_t> lora_off_;
  std::vector<int> lora_in_, lora_out_;
  // AdamW moments: base (same layout), head
  std::vector<float> m_, v_, head_m_, head_v_;
  // activations of the last forward
  int B_ = 0, T_ = 0;
  std::vector<int> inputs_, targets_;
  bool have_targets_ = false, classify_ = false;
  std::vector<float> encoded_, residual_, ln1_, ln1_mean_, ln1_rstd_, qkv_, att_, atty_, attproj_, residual2_, ln2_,
      ln2_mean_, ln2_rstd_, fch_, fch_gelu_, fcproj_, lnf_, lnf_mean_, lnf_rstd_;
  std::vector<float> lora_h_;                     // per (layer, kind) x·Aᵀ (BT, r); head slot last
  std::vector<float> last_rows_;                  // (B,C) lnf at position T-1 (classification)
  std::vector<float> logits_, probs_, losses_;
  int num_valid_ = 0;
};

}  // namespace llm
