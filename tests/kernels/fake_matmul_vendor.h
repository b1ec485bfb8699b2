// fake_matmul_vendor.h — a stand-in for cuBLASLt on the CUDA-on-CPU layer, so the plan cache and the rule for a
// declined call (kernels/matmul_plan.h) are tested in CI. Its plans go through the real MatmulPlanCache over a
// backend that counts creations and declines the problems a predicate names; the accepted ones are computed by
// the own GEMM (matmul_own), so results equal --matmul own bit for bit.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernels/matmul.cuh"

namespace ktest {

struct FakeLtBackend {
  struct Plan {
    int id = 0;
  };
  int created = 0, destroyed = 0;
  std::vector<kern::MatmulProblem> asked;                  // every create(), in order
  std::function<bool(const kern::MatmulProblem&)> decline;  // true: no algorithm for this problem

  bool create(const kern::MatmulProblem& p, Plan* plan, std::string* why) {
    asked.push_back(p);
    if (decline && decline(p)) {
      *why = "the fake heuristic found no algorithm";
      return false;
    }
    plan->id = ++created;
    return true;
  }
  void destroy(Plan*) { destroyed++; }
};

class FakeVendor final : public kern::MatmulVendor {
 public:
  const char* name() const override { return "fake cuBLASLt"; }
  bool run(const kern::MatmulProblem& p, const kern::MatmulArgs& g, std::string* why) override {
    if (!cache.get(p, why)) return false;
    runs++;
    if (p.type == kern::MatmulType::kBf16) kern::matmul_own<__nv_bfloat16>(p, g);
    else kern::matmul_own<float>(p, g);
    return true;
  }
  kern::MatmulPlanCache<FakeLtBackend> cache;
  int runs = 0;
};

// Installs a vendor for the scope (matmul_vendor() returns it), restoring the previous one after.
class ScopedVendor {
 public:
  explicit ScopedVendor(kern::MatmulVendor* v) : prev_(kern::matmul_vendor_override()) {
    kern::matmul_vendor_override() = v;
  }
  ~ScopedVendor() { kern::matmul_vendor_override() = prev_; }
  ScopedVendor(const ScopedVendor&) = delete;
  ScopedVendor& operator=(const ScopedVendor&) = delete;

 private:
  kern::MatmulVendor* prev_;
};

}  // namespace ktest
