// op_profile.h — optional wall-time accounting per op family of the CPU model (forward and backward).
//
// Why: dev/bench_cpu_step reports where a training step goes (layernorm, attention, softmax+CE, ...), so
// the slow non-GEMM ops can be found without a profiler (`perf` has no cycle counter on these VMs).
// Off by default: then each timed call costs one branch. Not thread-safe: enable it, run forward/backward
// from one thread (ops parallelise inside), read the totals, reset.
#pragma once
#include <chrono>

namespace llm {

enum ProfOp {
  kProfEncoderFwd, kProfLayernormFwd, kProfMatmulFwd, kProfAttentionFwd, kProfGeluFwd, kProfResidualFwd,
  kProfSoftmaxCeFwd, kProfSoftmaxCeBwd, kProfMatmulBwd, kProfLayernormBwd, kProfAttentionBwd, kProfGeluBwd,
  kProfResidualBwd /* dropout/residual backward, gradient-buffer clears and copies */, kProfEncoderBwd,
  kNumProfOps
};

inline const char* prof_op_name(int op) {
  static const char* const names[kNumProfOps] = {
      "encoder fwd", "layernorm fwd", "matmul fwd", "attention fwd", "gelu fwd", "residual+dropout fwd",
      "softmax+CE fwd", "softmax+CE bwd", "matmul bwd", "layernorm bwd", "attention bwd", "gelu bwd",
      "residual+dropout bwd, clears", "encoder bwd"};
  return names[op];
}

struct OpProfile {
  bool enabled = false;
  double ms[kNumProfOps] = {};  // accumulated wall milliseconds per op family
  void reset() {
    for (double& m : ms) m = 0.0;
  }
};

inline OpProfile& op_profile() {  // process-wide
  static OpProfile p;
  return p;
}

// Adds the wall time of its scope to op_profile().ms[op] when profiling is enabled.
class ProfScope {
 public:
  explicit ProfScope(ProfOp op) : op_(op), on_(op_profile().enabled) {
    if (on_) t0_ = std::chrono::steady_clock::now();
  }
  ~ProfScope() {
    if (on_)
      op_profile().ms[op_] +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
  }
  ProfScope(const ProfScope&) = delete;
  ProfScope& operator=(const ProfScope&) = delete;

 private:
  ProfOp op_;
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace llm
