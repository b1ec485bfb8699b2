// parity_util.h — error measures shared by the tests that compare a device (CUDA-on-CPU) run with the CPU
// reference element by element.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

// max |got - ref| over max |ref| (the absolute difference when ref is all zeros).
inline double max_rel(const float* got, const float* ref, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    diff = std::max(diff, (double)std::fabs(got[i] - ref[i]));
    scale = std::max(scale, (double)std::fabs(ref[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

// ||got - ref||₂ / ||ref||₂ (the absolute norm when ref is all zeros).
inline double norm_rel(const float* got, const float* ref, size_t n) {
  double d2 = 0, r2 = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = (double)got[i] - ref[i];
    d2 += d * d;
    r2 += (double)ref[i] * ref[i];
  }
  return r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
}
