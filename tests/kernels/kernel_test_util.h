// kernel_test_util.h — shared helpers for the kernel tests (tests/kernels/test_*.cu).
//
// Every kernel test follows the same recipe:
//   1. fresh random inputs (never exactly zero), rounded through the storage type so the fp32 reference
//      sees exactly the values the kernel sees (round_through<T>);
//   2. device outputs poisoned (0xFF bytes = NaN in fp32 and bf16) right before the launch, so an element
//      the kernel forgets to write fails the comparison;
//   3. EVERY element compared to the reference with |got - ref| <= atol + rtol * |ref|, the worst element and
//      the maximum errors printed.
//
// Tolerances (see tolerance() below):
//   fp32: rtol = 1e-5. The reference and the kernel differ only in the order of fp32 operations. An element-wise
//         op (a handful of roundings, u = 2^-24 each) is within ~8u = 5e-7 ≪ 1e-5 relative. A K-term reduction in
//         two orders differs by ≤ 2γ_K·Σ|terms| worst case (γ_K = K·u/(1 − K·u)), so atol is a floor relative to the
//         size of the TERMS, not of the result (which may cancel: LayerNorm dx = w·dout - mean(..) -
//         xhat·mean(..), GELU near its minimum): each test passes atol = 1e-5 × (the magnitude of the terms it
//         sums: Σ|terms| per element, or its maximum over the outputs), never a fixed large number.
//         1e-5 = 168u is the worst case 2γ_K for K ≤ 84; for the longer reductions here (K up to 768 in the
//         medium shapes) the roundings are independent and add in quadrature, ≈ √K·u·Σ|terms| (1.7e-6 at K =
//         768), so 1e-5 keeps a ≥ 6× margin over that, and ≥ 20× over the measured worst (err/bound ≤ 0.044 on
//         Zen 4 for every fp32 reduction; GELU forward's tanh near ±1, an element-wise case, 0.32).
//         Both summation orders are fixed by the source (the CPU layer runs the kernel's own tree/loop order, and
//         the compiler does not re-associate without -ffast-math), so the CPU only chooses FMA contraction
//         (-march=native vs the portable build): different roundings, the same error sizes. A wrong index, a
//         missed or doubled term is ≥ 1/K of Σ|terms| (≥ 1.3e-3 at K = 768), far outside.
//   bf16: every stored output is rounded to bf16 once: relative error <= 2^-8 (round to nearest, 8 significant
//         bits) — or < 2^-7 with stochastic rounding. fp32 accumulation of K terms adds ~K·2^-24 relative, which is
//         negligible next to 2^-8 for every K we use. So rtol = 2 × 2^-8 (one rounding of the result plus one of an
//         intermediate that is stored in bf16, e.g. the residual in the fused residual+LayerNorm), and atol =
//         2^-8 × (term magnitude) for the same cancellation reason as in fp32. This is ~4× tighter than llm.c's
//         0.079·|ref|.
#pragma once
#include "kernels/common.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace ktest {

template <class T> constexpr bool is_bf16 = std::is_same<T, __nv_bfloat16>::value;
template <class T> const char* type_name() { return is_bf16<T> ? "bf16" : "fp32"; }

// ---------------------------------------------------------------------------------------------------------
// Random inputs.

// n uniform values in [lo, hi), none of magnitude below 1e-3 (so "forgot to read it" and "read zeros" show).
inline std::vector<float> random_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) {
    do x = dist(rng); while (std::fabs(x) < 1e-3f);
  }
  return v;
}
// n random token ids in [0, V).
inline std::vector<int> random_tokens(size_t n, int V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, V - 1);
  std::vector<int> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Round every value through T (identity for float): what the kernel will actually see.
template <class T> std::vector<float> round_through(std::vector<float> v) {
  for (auto& x : v) x = kern::to_float<T>(kern::from_float<T>(x));
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Device arrays: RAII, filled from / read back as fp32 host vectors whatever the storage type.

template <class T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceArray(size_t count) : n(count) {
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr), (n ? n : 1) * sizeof(T)));
    poison();
  }
  DeviceArray(const std::vector<float>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  void poison() { CUDA_CHECK(cudaMemset(ptr, 0xFF, n * sizeof(T))); }  // NaN in fp32 and bf16
  // host -> elements [offset, offset + host.size())
  void upload(const std::vector<float>& host, size_t offset = 0) {
    EXPECT_LE(offset + host.size(), n);
    std::vector<T> tmp(host.size());
    for (size_t i = 0; i < host.size(); i++) tmp[i] = kern::from_float<T>(host[i]);
    CUDA_CHECK(cudaMemcpy(ptr + offset, tmp.data(), tmp.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  // elements [offset, offset + count) (count = all the rest by default) as fp32
  std::vector<float> download(size_t offset = 0, size_t count = SIZE_MAX) const {
    if (count == SIZE_MAX) count = n - offset;
    std::vector<T> tmp(count);
    CUDA_CHECK(cudaMemcpy(tmp.data(), ptr + offset, count * sizeof(T), cudaMemcpyDeviceToHost));
    std::vector<float> out(count);
    for (size_t i = 0; i < count; i++) out[i] = kern::to_float<T>(tmp[i]);
    return out;
  }
  std::vector<T> download_raw() const {
    std::vector<T> tmp(n);
    CUDA_CHECK(cudaMemcpy(tmp.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return tmp;
  }
};

// int array on the device (token ids).
struct DeviceInts {
  int* ptr = nullptr;
  size_t n = 0;
  explicit DeviceInts(const std::vector<int>& host) : n(host.size()) {
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr), (n ? n : 1) * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(ptr, host.data(), n * sizeof(int), cudaMemcpyHostToDevice));
  }
  ~DeviceInts() { cudaFree(ptr); }
  DeviceInts(const DeviceInts&) = delete;
  DeviceInts& operator=(const DeviceInts&) = delete;
};

// ---------------------------------------------------------------------------------------------------------
// Tolerances and the element-by-element comparison.

struct Tol {
  double rtol, atol;
};

// Tolerance for storage type T; `term_scale` = magnitude of the terms the result is computed from (see top).
template <class T> Tol tolerance(double term_scale = 1.0) {
  if (is_bf16<T>) return {2.0 / 256.0, term_scale / 256.0};
  return {1e-5, 1e-5 * term_scale};
}

struct CompareResult {
  size_t bad = 0;            // elements outside the tolerance (NaN counts as bad)
  size_t worst = 0;          // first failing index, else the one closest to its bound
  double max_abs = 0, max_rel = 0, worst_ratio = 0;
};

// Element i passes iff |got - ref| <= atol_i + rtol·|ref|, with atol_i = tol.atol × (scale ? scale[i] : 1).
// `scale` (optional, same length) is the per-element magnitude of the terms ref[i] was computed from (e.g. Σ|terms|
// of a sum), which bounds the rounding error of any summation order: the tightest honest floor.
inline CompareResult compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                             Tol tol, const std::vector<float>* scale = nullptr) {
  CompareResult r;
  if (scale) {
    EXPECT_EQ(scale->size(), ref.size()) << what;
  }
  EXPECT_EQ(got.size(), ref.size()) << what;
  const size_t n = std::min(got.size(), ref.size());
  for (size_t i = 0; i < n; i++) {
    const double g = got[i], e = ref[i], err = std::fabs(g - e);
    const double atol = scale && i < scale->size() ? tol.atol * (*scale)[i] : tol.atol;
    const double allowed = atol + tol.rtol * std::fabs(e);
    const bool ok = std::isfinite(g) == std::isfinite(e) && (!std::isfinite(e) ? g == e : err <= allowed);
    const double ratio = std::isfinite(err) ? err / allowed : 0.0;
    if (!ok) {
      if (r.bad++ == 0) r.worst = i;  // report the first failing element
    } else if (r.bad == 0 && ratio >= r.worst_ratio) {
      r.worst_ratio = ratio;  // no failure yet: report the element closest to its bound
      r.worst = i;
    }
    if (std::isfinite(err)) {
      r.max_abs = std::max(r.max_abs, err);
      if (e != 0) r.max_rel = std::max(r.max_rel, err / std::fabs(e));
    }
  }
  std::printf("  %-48s n=%-7zu max_abs=%.3e max_rel=%.3e err/bound=%.3f worst[%zu]: got %.8g ref %.8g (rtol %.1e atol %.1e%s) %s\n",
              what.c_str(), n, r.max_abs, r.max_rel, r.worst_ratio, r.worst, n ? got[r.worst] : 0.0, n ? ref[r.worst] : 0.0,
              tol.rtol, tol.atol, scale ? "×term" : "", r.bad ? "FAIL" : "ok");
  EXPECT_EQ(r.bad, 0u) << what << ": " << r.bad << " of " << n << " elements outside tolerance; worst index "
                       << r.worst << " got " << (n ? got[r.worst] : 0) << " ref " << (n ? ref[r.worst] : 0);
  return r;
}

// max |x| (the term magnitude most tests pass to tolerance()).
inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

// Shapes every test family runs: tiny (vocab-256/C=32 model), odd (no packing possible), medium.
struct Shape {
  int B, T, C;
  const char* name;
};
inline const std::vector<Shape>& test_shapes() {
  static const std::vector<Shape> shapes = {
      {2, 8, 32, "tiny B2 T8 C32"},
      {3, 5, 37, "odd B3 T5 C37"},
      {4, 32, 768, "medium B4 T32 C768"},
  };
  return shapes;
}

}  // namespace ktest
