// optimizer.h — AdamW and gradient clipping for the CPU reference (the settings, the decay mask and the LR
// schedules are the run's: host/optimizer_config.h).
//
// Why separate from the model: the optimizer state (m, v) and the schedule are training-program concerns
// (saved/restored for exact resume), while the model only knows forward/backward.
#pragma once
#include <array>
#include <cstddef>
#include <vector>

#include "cpu/gpt2_model.h"
#include "host/gpt2_config.h"
#include "host/optimizer_config.h"  // AdamWConfig, DecayMode, decay_mask, LRSchedule

namespace llm {

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

}  // namespace llm
