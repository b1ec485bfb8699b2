// optimizer_config.cpp — the weight-decay mask and the LR schedules (see optimizer_config.h).
#include "host/optimizer_config.h"

#include <algorithm>
#include <cmath>

namespace llm {

std::array<bool, kNumParamTensors> decay_mask(DecayMode mode) {
  std::array<bool, kNumParamTensors> mask{};
  if (mode == DecayMode::kAll) {
    mask.fill(true);
    return mask;
  }
  for (ParamTensor k : {kWte, kWpe, kQkvw, kAttprojw, kFcw, kFcprojw, kLmHead}) mask[k] = true;
  return mask;
}

float LRSchedule::operator()(int step) const {
  if (step < warmup_steps) {
    if (warmup_style == WarmupStyle::kLlmc) return max_lr * (float)(step + 1) / (float)warmup_steps;
    return initial_lr + (float)step * (max_lr - initial_lr) / (float)warmup_steps;
  }
  if (kind == ScheduleKind::kConstant) return max_lr;
  const int span = total_steps - warmup_steps;
  const double r = span > 0 ? std::clamp((double)(step - warmup_steps) / span, 0.0, 1.0) : 1.0;
  if (kind == ScheduleKind::kLinear) return (float)(max_lr + r * (min_lr - max_lr));
  return (float)(min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * r)));
}

}  // namespace llm
