// step_profile.cuh — where one training step's device time goes: linear-layer matmuls, attention, the rest.
//
// Why: issue 16's budget ("everything outside attention and the linear-layer matmuls <= 12 % of the 124M bf16
// step") must be checked on a bare GPU machine without a profiler. While a StepProfile is active
// (train_gpt2cu --profile-step N), the matmul host launchers (kernels/matmul.cuh, dbias and GELU epilogues
// included) and the attention dispatch (gpu/attention_dispatch.cuh) bracket their work with CUDA events on their
// stream; the profile sums the brackets and compares them with events around the whole step. Everything else
// (LayerNorm, residual, GELU backward, classifier, AdamW, norms, copies, launch gaps) is "other" =
// total - matmul - attention, so launch gaps count against the budget (an upper bound).
// Inactive (always, except in that one step) a launcher pays one pointer test. One stream per step: the events of
// all brackets are on the step's stream, so their timestamps are ordered.
#pragma once
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cuda_cpu/compat.cuh"

namespace kern {

enum class ProfilePhase { kMatmul = 0, kAttention = 1 };

class StepProfile {
 public:
  StepProfile() = default;
  StepProfile(const StepProfile&) = delete;
  StepProfile& operator=(const StepProfile&) = delete;
  ~StepProfile() {
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
  }

  // The profile the launchers report to (nullptr: none).
  static StepProfile*& active() {
    static StepProfile* p = nullptr;
    return p;
  }

  // Starts a step on `stream` and makes this profile the active one.
  void begin_step(cudaStream_t stream) {
    marks_.clear();
    used_ = 0;
    stream_ = stream;
    step_begin_ = record(stream);
    active() = this;
  }
  // Ends the step, waits for it (the profiled step is the one step that synchronises) and deactivates.
  void end_step() {
    step_end_ = record(stream_);
    active() = nullptr;
    CUDA_CHECK(cudaEventSynchronize(events_[step_end_]));
  }
  void begin(ProfilePhase phase, cudaStream_t stream) { marks_.push_back({phase, record(stream), -1}); }
  void end(cudaStream_t stream) { marks_.back().end = record(stream); }

  struct Split {
    double total_ms = 0, matmul_ms = 0, attention_ms = 0;
    double other_ms() const { return total_ms - matmul_ms - attention_ms; }
  };
  // The last ended step's split (after end_step).
  Split read() const {
    Split s;
    s.total_ms = elapsed(step_begin_, step_end_);
    for (const Mark& m : marks_) (m.phase == ProfilePhase::kMatmul ? s.matmul_ms : s.attention_ms) += elapsed(m.begin, m.end);
    return s;
  }
  // "matmul 61.0% | attention 26.5% | other 12.5% of 123.456 ms": the line scripts/gpu_check.sh reads.
  static std::string describe(const Split& s) {
    auto pct = [&](double ms) { return s.total_ms > 0 ? 100.0 * ms / s.total_ms : 0.0; };
    char buf[160];
    std::snprintf(buf, sizeof buf, "matmul %.1f%% | attention %.1f%% | other %.1f%% of %.3f ms", pct(s.matmul_ms),
                  pct(s.attention_ms), pct(s.other_ms()), s.total_ms);
    return buf;
  }

 private:
  struct Mark {
    ProfilePhase phase;
    int begin, end;
  };
  // Records the next pooled event on `stream` (events are created on first use and reused every step).
  int record(cudaStream_t stream) {
    if (used_ == events_.size()) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    CUDA_CHECK(cudaEventRecord(events_[used_], stream));
    return (int)used_++;
  }
  double elapsed(int a, int b) const {
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, events_[a], events_[b]));
    return ms;
  }

  std::vector<cudaEvent_t> events_;
  size_t used_ = 0;
  std::vector<Mark> marks_;
  cudaStream_t stream_ = nullptr;
  int step_begin_ = 0, step_end_ = 0;
};

// Brackets the enclosing launcher's work when a profile is active.
class ProfileScope {
 public:
  ProfileScope(ProfilePhase phase, cudaStream_t stream) : p_(StepProfile::active()), stream_(stream) {
    if (p_) p_->begin(phase, stream);
  }
  ~ProfileScope() {
    if (p_ && std::uncaught_exceptions() == 0) p_->end(stream_);  // (a failed launch: the step is lost anyway)
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  StepProfile* p_;
  cudaStream_t stream_;
};

}  // namespace kern
