// optimizer.cpp — AdamW over the per-tensor decay mask, global-norm clipping.
#include "cpu/optimizer.h"

#include <algorithm>
#include <cmath>

#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

AdamW::AdamW(const GPT2Config& config, const AdamWConfig& hp)
    : config_(config), hp_(hp), decay_(decay_mask(hp.decay)) {
  const size_t n = num_parameters(config);
  m_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

void AdamW::step(GPT2Model& model, float lr, int t, float grad_scale) {
  if (model.num_params() != m_.size() || model.num_params() != v_.size())
    fail("AdamW: model has ", model.num_params(), " parameters, optimizer state m ", m_.size(), " / v ", v_.size());
  if (!model.grads()) fail("AdamW: the model has no gradients (call zero_grad/backward first)");
  if (t < 1) fail("AdamW: step count t must be >= 1, got ", t);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto pt = (ParamTensor)k;
    const size_t n = model.param_size(pt), off = model.param_offset(pt);
    if (n == 0) continue;
    ref::adamw_update_scaled(model.params() + off, model.grads() + off, m_.data() + off, v_.data() + off, n, lr,
                             hp_.beta1, hp_.beta2, hp_.eps, decay_[k] ? hp_.weight_decay : 0.0f, t, grad_scale);
  }
}

double grad_norm(const GPT2Model& model) {
  if (!model.grads()) return 0.0;
  return ref::global_grad_norm(model.grads(), model.num_params());
}

float clip_scale(double norm, float max_norm, ClipStyle style) {
  if (style == ClipStyle::kLlmc) return norm > max_norm ? (float)(max_norm / norm) : 1.0f;
  const double scale = max_norm / (norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
  return scale < 1.0 ? (float)scale : 1.0f;
}

double clip_grad_norm(GPT2Model& model, float max_norm, ClipStyle style) {
  const double norm = grad_norm(model);
  if (!model.grads()) return norm;
  const float scale = clip_scale(norm, max_norm, style);
  if (scale != 1.0f) ref::scale_inplace(model.grads(), model.num_params(), scale);
  return norm;
}

}  // namespace llm
