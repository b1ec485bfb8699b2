// optimizer_config.h — what the flags say about the optimizer: AdamW settings, which tensors get weight decay, and
// the learning-rate schedules. Shared by every backend (the CPU AdamW in cpu/optimizer.h, the device AdamW in
// gpu/) and by the training driver (host/train_loop.h), which evaluates the schedule.
//
// Why in host/: the schedule and the settings are the run's (flags, saved for resume), not a device's; with them
// here the driver and the GPU trainer need nothing from the CPU reference.
#pragma once
#include <array>

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
