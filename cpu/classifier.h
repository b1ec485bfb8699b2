// classifier.h — GPT-2 fine-tuning on the CPU (the book's chapters 6 and 7, appendix E): a classification head
// or the LM head, a chosen trainable subset, and optional LoRA adapters on every linear layer.
//
// The transformer is GPT2Model's trunk (cpu/gpt2_model.h) with its fine-tuning hooks set from the spec: frozen
// tensors get no gradient work at all, blocks below the lowest trainable one are not back-propagated, LoRA
// adapters sit on every linear. This class adds only what differs: the classification head (a C → N linear read
// at the LAST position), the trainable set's AdamW, and the LoRA merge. A pretrained checkpoint loads as-is (the
// llm.c layout, host/gpt2_config.h). Dropout is not applied (the book fine-tunes with drop_rate 0).
//
// The modes, the LoRA parametrisation and the spec rules: host/finetune_spec.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/linear.h"
#include "host/finetune_spec.h"
#include "host/gpt2_config.h"

namespace llm {

class FinetuneGPT2 {
 public:
  // params: num_parameters(config) floats (a pretrained checkpoint). Throws llm::Error for a bad spec
  // (rank < 0 or rank > 0 with alpha <= 0, num_classes == 1 or < 0, train_from_layer out of range).
  FinetuneGPT2(const GPT2Config& config, std::vector<float> params, const FinetuneSpec& spec);

  const GPT2Config& config() const { return model_.config(); }
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
  const float* lm_logits() const { return model_.logits(); }    // (B,T,Vp) of the last forward_lm
  int predict(int b) const;                                      // argmax of class_logits row b

  // Parameters and gradients. grad_* are nullptr for frozen tensors (no gradient memory or work).
  float* base() { return model_.params(); }
  const float* base() const { return model_.params(); }
  float* base_tensor(ParamTensor k) { return model_.param(k); }
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
  Linear head_linear();  // the classification head (with the head's adapter)
  bool head_trainable() const { return spec_.lora_rank == 0 && spec_.train_head; }
  bool any_base_trainable() const;

  FinetuneSpec spec_;
  GPT2Model model_;  // the trunk (and the LM head); owns the base parameters, their gradients and the adapters
  std::vector<float> head_w_, head_b_, head_dw_, head_db_;
  // AdamW moments: base (the parameters' layout), head, adapters
  std::vector<float> m_, v_, head_m_, head_v_, lora_m_, lora_v_;
  // the classification head's activations of the last forward
  int B_ = 0, T_ = 0;
  std::vector<int> labels_;
  bool have_targets_ = false, classify_ = false;
  std::vector<float> last_rows_;                  // (B,C) lnf at position T-1
  std::vector<float> head_lora_h_;                // (B,r) x·Aᵀ of the head's adapter
  std::vector<float> logits_, probs_, losses_;    // (B,N), (B,N), (B)
};

}  // namespace llm
