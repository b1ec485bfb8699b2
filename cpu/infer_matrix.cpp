// infer_matrix.cpp — fp32 / bf16 / int8 / q4 inference matrices; the fp32 and bf16 AVX-512 products (int8 and q4
// multiply in cpu/infer_qdot.cpp). See infer_matrix.h.
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
  if (s == "q4") return WeightFormat::kQ4;
  fail("--weights must be fp32, bf16, int8 or q4 (got '", s, "')");
}

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::kFp32: return "fp32";
    case WeightFormat::kBf16: return "bf16";
    case WeightFormat::kInt8: return "int8";
    case WeightFormat::kQ4: return "q4";
  }
  return "?";
}

namespace {

inline float widen(float x) { return x; }
inline float widen(uint16_t x) { return bf16_to_fp32(x); }

#if LLM_INFER_AVX512
// 16 weights widened to fp32; the masked forms read only the first lanes of a row's tail (nothing past its end).
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {  // bf16 = the high half of an fp32
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
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

// out (rows) = W (rows, cols) · x + b[r] for the groups of 4 rows of `part`.
template <class T>
void gemv(float* out, const T* w, const float* x, const float* b, int rows, int cols, Part part) {
  const int groups = (rows + 3) / 4, g1 = part.end(groups);
  for (int g = part.first(groups); g < g1; g++) {
    const int r0 = 4 * g, nr = std::min(4, rows - r0);
    const T* wr = w + (size_t)r0 * cols;
#if LLM_INFER_AVX512
    // Software prefetch of the next group for bf16: it issues too few loads per byte for the hardware
    // prefetcher alone to keep enough DRAM requests in flight (one core, 200000x768, GB/s streamed: bf16
    // 6.1 -> 8.4, widened int8 5.6 -> 7.7; fp32 does not gain, so it is left to the hardware).
    if (sizeof(T) < 4 && g + kPrefetchGroups < g1) {
      const char* ahead = reinterpret_cast<const char*>(wr + (size_t)4 * kPrefetchGroups * cols);
      const size_t bytes = std::min<size_t>(4, rows - r0 - 4 * kPrefetchGroups) * cols * sizeof(T);
      for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
    }
#endif
    float s[4];
    if (nr == 4) dot_rows<T, 4>(wr, cols, x, cols, s);
    else
      for (int k = 0; k < nr; k++) dot_rows<T, 1>(wr + (size_t)k * cols, cols, x, cols, s + k);
    for (int k = 0; k < nr; k++) out[r0 + k] = s[k] + (b ? b[r0 + k] : 0.0f);
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
  u8_.clear();
  scale_.clear();
  bscale_.clear();
  if (f == WeightFormat::kBf16) {
    bf16_.resize(n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) bf16_[i] = fp32_to_bf16(w[i]);
  } else if (f == WeightFormat::kInt8) {
    ld_ = qpad(cols, 64);
    u8_.assign(rows * ld_, kInt8Offset);  // padding = 0
    scale_.resize(rows);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
      const float* src = w + (size_t)r * cols;
      float mx = 0.0f;
      for (int c = 0; c < cols; c++) mx = std::max(mx, std::fabs(src[c]));
      const float s = mx > 0.0f ? mx / 127.0f : 1.0f;
      scale_[r] = s;
      for (int c = 0; c < cols; c++)
        u8_[r * ld_ + c] = (uint8_t)(kInt8Offset + std::max(-127.0f, std::min(127.0f, std::nearbyint(src[c] / s))));
    }
  } else if (f == WeightFormat::kQ4) {
    const int pad = qpad(cols, kQChunk);
    ld_ = pad / 2;
    ldd_ = pad / kQBlock;
    const int prows = qpad(rows, 4);  // the kernel works on groups of 4 rows
    u8_.assign(prows * ld_, 0x88);    // padding (columns and rows) = nibbles kQ4Offset (= 0)
    bscale_.assign(prows * ldd_, 0);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
      const float* src = w + (size_t)r * cols;
      for (int b = 0; b * kQBlock < cols; b++) {
        const int c0 = b * kQBlock, c1 = std::min(cols, c0 + kQBlock);
        float m = 0.0f;  // the block's weight of largest magnitude, with its sign
        for (int c = c0; c < c1; c++)
          if (std::fabs(src[c]) > std::fabs(m)) m = src[c];
        const uint16_t db = fp32_to_bf16(m / -8.0f);
        bscale_[q4_scale_index(r, b, ldd_)] = db;
        const float d = bf16_to_fp32(db), inv = d != 0.0f ? 1.0f / d : 0.0f;
        for (int c = c0; c < c1; c++) {
          const int q = (int)std::max(-8.0f, std::min(7.0f, std::nearbyint(src[c] * inv)));
          uint8_t& byte = u8_[r * ld_ + c / kQChunk * 64 + c % 64];  // low nibble: c % 128 < 64, else high
          const int nibble = q + kQ4Offset;
          byte = c % kQChunk < 64 ? (uint8_t)((byte & 0xF0) | nibble) : (uint8_t)((byte & 0x0F) | (nibble << 4));
        }
      }
    }
  }
  wide_.assign(f == WeightFormat::kBf16 ? (size_t)omp_get_max_threads() * cols : 0, 0.0f);
}

size_t InferMatrix::bytes() const {
  const size_t n = (size_t)rows_ * cols_;
  switch (f_) {
    case WeightFormat::kFp32: return 4 * n;
    case WeightFormat::kBf16: return 2 * n;
    case WeightFormat::kInt8: return u8_.size() + 4 * (size_t)rows_;
    case WeightFormat::kQ4: return u8_.size() + 2 * bscale_.size();
  }
  return 0;
}

void InferMatrix::row(int r, float* dst) const {
  const size_t o = (size_t)r * cols_;  // fp32 / bf16
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
      const uint8_t* src = u8_.data() + r * ld_;
      const float s = scale_[r];
#pragma omp simd
      for (int c = 0; c < cols_; c++) dst[c] = (float)((int)src[c] - kInt8Offset) * s;
      break;
    }
    case WeightFormat::kQ4: {
      const uint8_t* src = u8_.data() + r * ld_;
      for (int c = 0; c < cols_; c++) {
        const uint8_t b = src[c / kQChunk * 64 + c % 64];
        const int q = (c % kQChunk < 64 ? b & 15 : b >> 4) - kQ4Offset;
        dst[c] = (float)q * bf16_to_fp32(bscale_[q4_scale_index(r, c / kQBlock, ldd_)]);
      }
      break;
    }
  }
}

// This thread's part of the product; fp32 / bf16 multiply one input row, int8 / q4 the n rows of acts.
void InferMatrix::product(float* out, const float* in, const float* bias, Part part, const QuantActs* acts) const {
  switch (f_) {
    case WeightFormat::kFp32: gemv(out, f32_, in, bias, rows_, cols_, part); break;
    case WeightFormat::kBf16: gemv(out, bf16_.data(), in, bias, rows_, cols_, part); break;
    case WeightFormat::kInt8: qgemv_int8(out, u8_.data(), scale_.data(), ld_, *acts, bias, rows_, part); break;
    case WeightFormat::kQ4: qgemv_q4(out, u8_.data(), bscale_.data(), ld_, ldd_, *acts, bias, rows_, part); break;
  }
}

std::pair<int, int> InferMatrix::forward_part(float* out, const float* in, const float* bias, Part part) const {
  const QuantActs* acts = nullptr;
  if (quantises_input()) {
    static thread_local QuantActs mine;
    mine.quantize(in, 1, cols_, weight_offset());
    acts = &mine;
  }
  product(out, in, bias, part, acts);
  const int groups = (rows_ + 3) / 4;
  return {std::min(rows_, 4 * part.first(groups)), std::min(rows_, 4 * part.end(groups))};
}

void InferMatrix::forward(float* out, const float* in, const float* bias, int n) const {
  if (quantises_input()) {
    static thread_local QuantActs mine;  // the calling thread quantises; the product's threads only read
    mine.quantize(in, n, cols_, weight_offset());
    const QuantActs* acts = &mine;  // (taken here: inside the team `mine` names each thread's own instance)
#pragma omp parallel
    product(out, in, bias, Part{omp_get_thread_num(), omp_get_num_threads()}, acts);
    return;
  }
  if (n == 1) {
#pragma omp parallel
    product(out, in, bias, Part{omp_get_thread_num(), omp_get_num_threads()}, nullptr);
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
