// matmul_plan.h — what a vendor GEMM (cuBLASLt) is asked to do, the cache of its per-problem plans, and the
// rule for a call it declines. Host code only, so all of it runs (and is tested) on the CUDA-on-CPU layer.
//
// Why: cuBLASLt needs a matmul descriptor, three matrix layouts and an algorithm chosen by its heuristic for
// every problem. A GPT-2 step makes ~147 matmuls over a handful of distinct problems, so the plan is built once
// per MatmulProblem (shape, transposes, epilogue, element type, TF32) and looked up afterwards; only the data
// pointers change from call to call. A call the vendor declines (no algorithm, misaligned pointer, failed
// launch) used to fall back silently to the ~50x slower own GEMM; now the caller chooses:
//   MatmulBackend::Own       the own GEMM, on purpose (`--matmul own`)
//   MatmulBackend::Auto      the vendor when there is one; a decline is counted (matmul_vendor_declines())
//                            and the own GEMM runs (kernel labs, generation, fine-tuning)
//   MatmulBackend::CublasLt  the vendor, required: no vendor or a decline is an llm::Error naming the problem
//                            (the trainer: `--matmul auto` resolves to this when the vendor exists)
// Problems are column-major, as cuBLASLt sees them: D(m,n) = op(A)·op(B) [+ D], op = transpose when set.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "cuda_cpu/compat.cuh"  // cudaStream_t
#include "host/error.h"

namespace kern {

enum class MatmulBackend { Auto, Own, CublasLt };
enum class MatmulEpi { kNone, kBias, kGeluAuxBias, kGeluAux, kDGelu };
enum class MatmulType { kFp32, kBf16 };

// Everything a vendor plan depends on (never the data pointers).
struct MatmulProblem {
  int m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  MatmulEpi epi = MatmulEpi::kNone;
  MatmulType type = MatmulType::kFp32;
  bool tf32 = false;  // fp32 inputs multiplied on TF32 tensor cores (10-bit mantissa), fp32 accumulation

  bool operator==(const MatmulProblem& o) const {
    return m == o.m && n == o.n && k == o.k && trans_a == o.trans_a && trans_b == o.trans_b && epi == o.epi &&
           type == o.type && tf32 == o.tf32;
  }
  // "m=3072 n=512 k=768 op(A)=T op(B)=N epilogue gelu_aux_bias bf16" — what an error message names.
  std::string describe() const {
    static const char* const epis[] = {"none", "bias", "gelu_aux_bias", "gelu_aux", "dgelu"};
    return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " op(A)=" +
           (trans_a ? "T" : "N") + " op(B)=" + (trans_b ? "T" : "N") + " epilogue " + epis[(int)epi] + " " +
           (type == MatmulType::kBf16 ? "bf16" : (tf32 ? "fp32 (tf32)" : "fp32"));
  }
};

struct MatmulProblemHash {
  size_t operator()(const MatmulProblem& p) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    const uint64_t parts[] = {(uint64_t)p.m, (uint64_t)p.n, (uint64_t)p.k,
                              (uint64_t)p.trans_a | (uint64_t)p.trans_b << 1 | (uint64_t)p.tf32 << 2,
                              (uint64_t)p.epi, (uint64_t)p.type};
    for (uint64_t x : parts) h = (h ^ x) * 1099511628211ull;
    return (size_t)h;
  }
};

// The data of one call. aux: the GELU pre-activation (written by kGeluAux*, read by kDGelu), same layout as D.
struct MatmulArgs {
  void* d = nullptr;
  const void* a = nullptr;
  const void* b = nullptr;
  const void* bias = nullptr;  // (m) per row of the column-major D
  void* aux = nullptr;
  bool accumulate = false;  // D += result
  cudaStream_t stream = 0;
};

// Plans per problem over a backend that builds them:
//   struct Backend { using Plan = ...;
//                    bool create(const MatmulProblem&, Plan*, std::string* why);  // false: declined, why says so
//                    void destroy(Plan*); };
// A declined problem is remembered as declined (its heuristic is not asked again). Not thread-safe: one cache per
// device context, used from the thread that launches.
template <class Backend>
class MatmulPlanCache {
 public:
  using Plan = typename Backend::Plan;
  explicit MatmulPlanCache(Backend backend = Backend()) : backend_(std::move(backend)) {}
  ~MatmulPlanCache() { clear(); }
  MatmulPlanCache(const MatmulPlanCache&) = delete;
  MatmulPlanCache& operator=(const MatmulPlanCache&) = delete;

  // The plan of p (built on the first call), or nullptr with *why set when the backend declined p.
  const Plan* get(const MatmulProblem& p, std::string* why) {
    auto it = entries_.find(p);
    if (it != entries_.end()) {
      hits_++;
    } else {
      misses_++;
      Entry e;
      e.ok = backend_.create(p, &e.plan, &e.why);
      it = entries_.emplace(p, std::move(e)).first;
    }
    if (!it->second.ok) {
      if (why) *why = it->second.why;
      return nullptr;
    }
    return &it->second.plan;
  }
  void clear() {
    for (auto& kv : entries_)
      if (kv.second.ok) backend_.destroy(&kv.second.plan);
    entries_.clear();
  }
  Backend& backend() { return backend_; }
  size_t size() const { return entries_.size(); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  struct Entry {
    Plan plan{};
    bool ok = false;
    std::string why;
  };
  Backend backend_;
  std::unordered_map<MatmulProblem, Entry, MatmulProblemHash> entries_;
  int64_t hits_ = 0, misses_ = 0;
};

// A vendor GEMM: cuBLASLt in an nvcc build; tests install a fake one on the CPU layer.
class MatmulVendor {
 public:
  virtual ~MatmulVendor() = default;
  virtual const char* name() const = 0;
  // Runs the problem on args; false (with *why) when it cannot.
  virtual bool run(const MatmulProblem& p, const MatmulArgs& args, std::string* why) = 0;
};

// A vendor installed by hand (tests); nullptr: the build's own choice (matmul.cuh's matmul_vendor()).
inline MatmulVendor*& matmul_vendor_override() {
  static MatmulVendor* v = nullptr;
  return v;
}

// Number of calls where the vendor was asked (MatmulBackend::Auto) but declined, so the own GEMM ran instead
// (dev/cuda/matmul.cu checks it before reporting cuBLASLt timings).
inline int& matmul_vendor_declines() {
  static int n = 0;
  return n;
}

// The decision for one call: true if `vendor` ran it; false if the own GEMM must run it (backend Own, or Auto
// with no vendor or a counted decline). CublasLt (required) with no vendor or a decline throws llm::Error
// naming the problem.
inline bool matmul_try_vendor(MatmulVendor* vendor, MatmulBackend backend, const MatmulProblem& p,
                              const MatmulArgs& args) {
  if (backend == MatmulBackend::Own) return false;
  if (!vendor) {
    if (backend == MatmulBackend::CublasLt)
      llm::fail("matmul ", p.describe(), ": cuBLASLt was required but this build has none (use --matmul own)");
    return false;
  }
  std::string why;
  if (vendor->run(p, args, &why)) return true;
  if (backend == MatmulBackend::CublasLt)
    llm::fail("matmul ", p.describe(), ": ", vendor->name(), " declined it (", why,
              "); refusing to fall back to the ~50x slower own GEMM in training (--matmul own selects it on purpose)");
  matmul_vendor_declines()++;
  return false;
}

}  // namespace kern
