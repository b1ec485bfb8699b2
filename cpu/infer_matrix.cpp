// infer_matrix.cpp — fp32 / bf16 / int8 inference matrices and their AVX-512 products (see infer_matrix.h).
#include "cpu/infer_matrix.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "host/checkpoint.h"  // fp32_to_bf16, bf16_to_fp32
#include "host/error.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define LLM_INFER_AVX512 1
// GCC 12 flags its own avx512fintrin.h helpers (_mm512_undefined_* in the reductions/widenings) as uninitialised.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#else
#define LLM_INFER_AVX512 0
#endif

namespace llm {

WeightFormat parse_weight_format(const std::string& s) {
  if (s == "fp32") return WeightFormat::kFp32;
  if (s == "bf16") return WeightFormat::kBf16;
  if (s == "int8") return WeightFormat::kInt8;
  fail("--weights must be fp32, bf16 or int8 (got '", s, "')");
}

const char* weight_format_name(WeightFormat f) {
  return f == WeightFormat::kFp32 ? "fp32" : f == WeightFormat::kBf16 ? "bf16" : "int8";
}

namespace {

inline float widen(float x) { return x; }
inline float widen(uint16_t x) { return bf16_to_fp32(x); }
inline float widen(int8_t x) { return (float)x; }

#if LLM_INFER_AVX512
// 16 weights widened to fp32; the masked forms read only the first lanes of a row's tail (nothing past its end).
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {  // bf16 = the high half of an fp32
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 load16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
inline __m512 load16(const int8_t* p, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}
#endif

// s[k] = Σ_c w[k·ld + c] · x[c] for the R rows starting at w (R independent accumulators share each x load).
template <class T, int R>
inline void dot_rows(const T* w, size_t ld, const float* x, int cols, float* s) {
#if LLM_INFER_AVX512
  __m512 acc[R];
  for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
  int c = 0;
  for (; c + 16 <= cols; c += 16) {
    const __m512 xv = _mm512_loadu_ps(x + c);
    for (int k = 0; k < R; k++) acc[k] = _mm512_fmadd_ps(load16(w + k * ld + c), xv, acc[k]);
  }
  if (c < cols) {
    const __mmask16 m = (__mmask16)((1u << (cols - c)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
    for (int k = 0; k < R; k++) acc[k] = _mm512_fmadd_ps(load16(w + k * ld + c, m), xv, acc[k]);
  }
  for (int k = 0; k < R; k++) s[k] = _mm512_reduce_add_ps(acc[k]);
#else
  for (int k = 0; k < R; k++) {
    float a = 0.0f;
    for (int c = 0; c < cols; c++) a += widen(w[k * ld + c]) * x[c];
    s[k] = a;
  }
#endif
}

constexpr int kPrefetchGroups = 1;

// out (rows) = (W (rows, cols) · x) · scale[r] + b[r]: groups of 4 rows, threads split the groups statically.
template <class T>
void gemv(float* out, const T* w, const float* scale, const float* x, const float* b, int rows, int cols) {
  const int groups = (rows + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int g = 0; g < groups; g++) {
    const int r0 = 4 * g, nr = std::min(4, rows - r0);
    const T* wr = w + (size_t)r0 * cols;
#if LLM_INFER_AVX512
    // Software prefetch of the next group for bf16/int8: they issue too few loads per byte for the hardware
    // prefetcher alone to keep enough DRAM requests in flight (one core, 200000x768, GB/s streamed: int8
    // 5.6 -> 7.7, bf16 6.1 -> 8.4; fp32 does not gain, so it is left to the hardware).
    if (sizeof(T) < 4 && g + kPrefetchGroups < groups) {
      const char* ahead = reinterpret_cast<const char*>(wr + (size_t)4 * kPrefetchGroups * cols);
      const size_t bytes = std::min<size_t>(4, rows - r0 - 4 * kPrefetchGroups) * cols * sizeof(T);
      for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
    }
#endif
    float s[4];
    if (nr == 4) dot_rows<T, 4>(wr, cols, x, cols, s);
    else
      for (int k = 0; k < nr; k++) dot_rows<T, 1>(wr + (size_t)k * cols, cols, x, cols, s + k);
    for (int k = 0; k < nr; k++) out[r0 + k] = s[k] * (scale ? scale[r0 + k] : 1.0f) + (b ? b[r0 + k] : 0.0f);
  }
}

}  // namespace

void InferMatrix::set(const float* w, int rows, int cols, WeightFormat f) {
  if (rows <= 0 || cols <= 0) fail("InferMatrix: bad shape ", rows, "x", cols);
  f_ = f;
  rows_ = rows;
  cols_ = cols;
  const size_t n = (size_t)rows * cols;
  f32_ = f == WeightFormat::kFp32 ? w : nullptr;
  bf16_.clear();
  i8_.clear();
  scale_.clear();
  if (f == WeightFormat::kBf16) {
    bf16_.resize(n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) bf16_[i] = fp32_to_bf16(w[i]);
  } else if (f == WeightFormat::kInt8) {
    i8_.resize(n);
    scale_.resize(rows);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
      const float* src = w + (size_t)r * cols;
      float mx = 0.0f;
      for (int c = 0; c < cols; c++) mx = std::max(mx, std::fabs(src[c]));
      const float s = mx > 0.0f ? mx / 127.0f : 1.0f;
      scale_[r] = s;
      for (int c = 0; c < cols; c++)
        i8_[(size_t)r * cols + c] = (int8_t)std::max(-127.0f, std::min(127.0f, std::nearbyint(src[c] / s)));
    }
  }
  wide_.assign(f == WeightFormat::kFp32 ? 0 : (size_t)omp_get_max_threads() * cols, 0.0f);
}

size_t InferMatrix::bytes() const {
  const size_t n = (size_t)rows_ * cols_;
  return f_ == WeightFormat::kFp32 ? 4 * n : f_ == WeightFormat::kBf16 ? 2 * n : n + 4 * (size_t)rows_;
}

void InferMatrix::row(int r, float* dst) const {
  const size_t o = (size_t)r * cols_;
  switch (f_) {  // one loop per format, so each one vectorises
    case WeightFormat::kFp32: std::memcpy(dst, f32_ + o, cols_ * sizeof(float)); break;
    case WeightFormat::kBf16: {
      const uint16_t* src = bf16_.data() + o;
#pragma omp simd
      for (int c = 0; c < cols_; c++) {
        const uint32_t bits = (uint32_t)src[c] << 16;
        std::memcpy(dst + c, &bits, 4);
      }
      break;
    }
    case WeightFormat::kInt8: {
      const int8_t* src = i8_.data() + o;
      const float s = scale_[r];
#pragma omp simd
      for (int c = 0; c < cols_; c++) dst[c] = (float)src[c] * s;
      break;
    }
  }
}

void InferMatrix::forward(float* out, const float* in, const float* bias, int n) const {
  if (n == 1) {
    switch (f_) {
      case WeightFormat::kFp32: gemv(out, f32_, nullptr, in, bias, rows_, cols_); break;
      case WeightFormat::kBf16: gemv(out, bf16_.data(), nullptr, in, bias, rows_, cols_); break;
      case WeightFormat::kInt8: gemv(out, i8_.data(), scale_.data(), in, bias, rows_, cols_); break;
    }
    return;
  }
  if (f_ == WeightFormat::kFp32) {  // prefill in fp32: the reference GEMM
    ref::matmul_forward(out, in, f32_, bias, n, cols_, rows_);
    return;
  }
  // Widen each weight row once (into this thread's slot) and dot it with all n input rows.
  const int threads = std::max(1, std::min(omp_get_max_threads(), (int)(wide_.size() / cols_)));
#pragma omp parallel num_threads(threads)
  {
    float* w = wide_.data() + (size_t)omp_get_thread_num() * cols_;
#pragma omp for schedule(static)
    for (int r = 0; r < rows_; r++) {
      row(r, w);
      for (int i = 0; i < n; i++) {
        float s;
        dot_rows<float, 1>(w, cols_, in + (size_t)i * cols_, cols_, &s);
        out[(size_t)i * rows_ + r] = s + (bias ? bias[r] : 0.0f);
      }
    }
  }
}

}  // namespace llm
