// optimizer.h — AdamW, gradient clipping and learning-rate schedules for the CPU reference.
//
// Why separate from the model: the optimizer state (m, v) and the schedule are training-program concerns
// (saved/restored for exact resume), while the model only knows forward/backward.
#pragma once
#include <array>
#include <cstddef>
#include <vector>

#include "cpu/gpt2_model.h"
#include "host/gpt2_config.h"

namespace llm {

// Which tensors get weight decay.
enum class DecayMode {
  kMatrices,  // default (llm.c / GPT-2): wte, wpe, qkvw, attprojw, fcw, fcprojw, lm_head; biases and LN params not
  kAll,       // the book (torch.optim.AdamW(model.parameters(), weight_decay=...)): every tensor
};

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;   // llm.c's default (the book uses torch's 0.999)
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  DecayMode decay = DecayMode::kMatrices;
};

// true for the tensors DecayMode applies weight decay to.
std::array<bool, kNumParamTensors> decay_mask(DecayMode mode);

class AdamW {
 public:
  AdamW(const GPT2Config& config, const AdamWConfig& hp);

  // One update of all parameters from model.grads() · grad_scale with learning rate lr; t is the 1-based update
  // count (bias correction uses βᵗ). Gradients are not modified. grad_scale = clip_scale(...) fuses clipping
  // into the update (one pass less over the gradients; same bits as clip_grad_norm + step).
  void step(GPT2Model& model, float lr, int t, float grad_scale = 1.0f);

  const AdamWConfig& hyperparams() const { return hp_; }
  // First and second moments, same layout as the parameters (zero-initialised, allocated at construction).
  // Save/restore these (plus the step count) for exact resume.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }

 private:
  GPT2Config config_;
  AdamWConfig hp_;
  std::array<bool, kNumParamTensors> decay_;
  std::vector<float> m_, v_;
};

// Global L2-norm gradient clipping. Returns the norm BEFORE clipping (deterministic, double accumulation).
enum class ClipStyle {
  kTorch,  // book / torch.nn.utils.clip_grad_norm_: scale = max_norm/(norm+1e-6), applied when < 1
  kLlmc,   // llm.c: scale = max_norm/norm when norm > max_norm
};
double clip_grad_norm(GPT2Model& model, float max_norm, ClipStyle style = ClipStyle::kTorch);
// The norm alone (no clipping).
double grad_norm(const GPT2Model& model);
// The factor clip_grad_norm would multiply the gradients by (1 when no clipping is needed).
float clip_scale(double norm, float max_norm, ClipStyle style = ClipStyle::kTorch);

// Learning-rate schedules. step is 0-based; lr(step) is set BEFORE that step's forward/backward.
//   warmup (step < warmup_steps), kBook:  initial_lr + step·(max_lr − initial_lr)/warmup_steps   (book appendix D)
//   warmup (step < warmup_steps), kLlmc:  max_lr·(step+1)/warmup_steps                          (llm.c)
//   after warmup, progress r = (step − warmup)/(total − warmup) clamped to [0,1]:
//     kConstant: max_lr
//     kLinear:   max_lr + r·(min_lr − max_lr)
//     kCosine:   min_lr + (max_lr − min_lr)·0.5·(1 + cos(π·r))
enum class ScheduleKind { kConstant, kLinear, kCosine };
enum class WarmupStyle { kBook, kLlmc };

struct LRSchedule {
  ScheduleKind kind = ScheduleKind::kCosine;
  WarmupStyle warmup_style = WarmupStyle::kBook;
  float max_lr = 1e-3f;      // peak
  float min_lr = 1e-5f;      // end of the decay
  float initial_lr = 1e-5f;  // start of the warmup (kBook only)
  int warmup_steps = 0;
  int total_steps = 1;

  float operator()(int step) const;
};

}  // namespace llm
