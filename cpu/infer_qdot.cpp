// infer_qdot.cpp — activation quantisation and the VNNI int8 / q4 products (see infer_qdot.h). Without AVX-512
// VNNI the same integer arithmetic runs as plain loops.
#include "cpu/infer_qdot.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define LLM_QDOT_VNNI 1
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's own _mm512_undefined_* in the reductions
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#else
#define LLM_QDOT_VNNI 0
#endif

namespace llm {

namespace {

// A 64-byte aligned view of n elements of v (v grows, never shrinks).
template <class T>
T* aligned(std::vector<T>& v, size_t n) {
  const size_t extra = 64 / sizeof(T);
  if (v.size() < n + extra) v.resize(n + extra);
  const uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
  return reinterpret_cast<T*>((p + 63) & ~uintptr_t(63));
}

inline float bf16f(uint16_t b) {
  const uint32_t bits = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

void QuantActs::quantize(const float* x, int n, int cols) {
  n_ = n;
  cols_ = cols;
  pad_ = qpad(cols, kQChunk);
  const int nb = pad_ / kQBlock, nl = pad_ / 4;
  q_ = aligned(qbuf_, (size_t)n * pad_);
  if (scale_.size() < (size_t)n * nb) scale_.resize((size_t)n * nb);
  lscale_ = aligned(lsbuf_, (size_t)n * nl);
  lsum_ = aligned(lsumbuf_, (size_t)n * nl);
  for (int i = 0; i < n; i++) {
    const float* xi = x + (size_t)i * cols;
    int8_t* qi = q_ + (size_t)i * pad_;
    for (int b = 0; b < nb; b++) {
      const int c0 = b * kQBlock, len = std::max(0, std::min(kQBlock, cols - c0));
      float mx = 0.0f;
      for (int c = 0; c < len; c++) mx = std::max(mx, std::fabs(xi[c0 + c]));
      const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
      scale_[(size_t)i * nb + b] = mx / 127.0f;
      for (int c = 0; c < len; c++) qi[c0 + c] = (int8_t)std::nearbyint(xi[c0 + c] * inv);  // |.| <= 127
      for (int c = len; c < kQBlock; c++) qi[c0 + c] = 0;                                   // padding
      for (int l = 0; l < kQBlock / 4; l++) {
        const int8_t* g = qi + c0 + 4 * l;
        lsum_[(size_t)i * nl + c0 / 4 + l] = g[0] + g[1] + g[2] + g[3];
        lscale_[(size_t)i * nl + c0 / 4 + l] = scale_[(size_t)i * nb + b];
      }
    }
  }
}

namespace {

#if LLM_QDOT_VNNI
// s[k] = Σ_c (w[k·ldw + c] − 128)·value(c) for R rows; wcols = ldw (a multiple of 64).
template <int R>
inline void dot_int8(const uint8_t* w, size_t ldw, const int8_t* x, const float* ls, const int32_t* lsum, float* s) {
  __m512 acc[R];
  for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
  for (size_t c = 0; c < ldw; c += 64) {
    const __m512i xv = _mm512_load_si512(x + c);
    const __m512 sc = _mm512_load_ps(ls + c / 4);
    const __m512i off = _mm512_slli_epi32(_mm512_load_si512(lsum + c / 4), 7);  // 128·Σ q_x per lane
    for (int k = 0; k < R; k++) {
      const __m512i wv = _mm512_loadu_si512(w + k * ldw + c);
      const __m512i d = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv), off);
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sc, acc[k]);
    }
  }
  for (int k = 0; k < R; k++) s[k] = _mm512_reduce_add_ps(acc[k]);
}

// s[k] = Σ_b d_b Σ_{c in b} (nibble − 8)·value(c) for R rows; ldw bytes per row (a multiple of 64).
template <int R>
inline void dot_q4(const uint8_t* w, const uint16_t* d, size_t ldw, size_t ldd, const int8_t* x, const float* ls,
                   const int32_t* lsum, float* s) {
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  // lanes 0-7 take block scale 0 (or 2), lanes 8-15 block scale 1 (or 3)
  const __m512i ia = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i ib = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  __m512 acc[R];
  for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
  for (size_t j = 0; j < ldw; j += 64) {  // j: byte offset; columns 2j .. 2j+127
    const __m512i x0 = _mm512_load_si512(x + 2 * j), x1 = _mm512_load_si512(x + 2 * j + 64);
    const __m512 s0 = _mm512_load_ps(ls + j / 2), s1 = _mm512_load_ps(ls + j / 2 + 16);
    const __m512i o0 = _mm512_slli_epi32(_mm512_load_si512(lsum + j / 2), 3);  // 8·Σ q_x per lane
    const __m512i o1 = _mm512_slli_epi32(_mm512_load_si512(lsum + j / 2 + 16), 3);
    for (int k = 0; k < R; k++) {
      const __m512i wv = _mm512_loadu_si512(w + k * ldw + j);
      const __m512i lo = _mm512_and_si512(wv, lo4), hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), lo4);
      const __m512i d0 = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x0), o0);
      const __m512i d1 = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, x1), o1);
      // the 4 bf16 block scales of this chunk, widened (bf16 = high half of an fp32)
      const __m128i b4 = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d + k * ldd + j / 16)));
      const __m512 w4 = _mm512_castps128_ps512(_mm_castsi128_ps(_mm_slli_epi32(b4, 16)));
      acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d0), s0), _mm512_permutexvar_ps(ia, w4), acc[k]);
      acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d1), s1), _mm512_permutexvar_ps(ib, w4), acc[k]);
    }
  }
  for (int k = 0; k < R; k++) s[k] = _mm512_reduce_add_ps(acc[k]);
}
#else
template <int R>
inline void dot_int8(const uint8_t* w, size_t ldw, const int8_t* x, const float* ls, const int32_t*, float* s) {
  for (int k = 0; k < R; k++) {
    float acc = 0.0f;
    for (size_t l = 0; l < ldw / 4; l++) {
      int32_t d = 0;
      for (int e = 0; e < 4; e++) d += ((int32_t)w[k * ldw + 4 * l + e] - 128) * x[4 * l + e];
      acc += (float)d * ls[l];
    }
    s[k] = acc;
  }
}

template <int R>
inline void dot_q4(const uint8_t* w, const uint16_t* d, size_t ldw, size_t ldd, const int8_t* x, const float* ls,
                   const int32_t*, float* s) {
  for (int k = 0; k < R; k++) {
    float acc = 0.0f;
    for (size_t c = 0; c < 2 * ldw; c += 4) {
      const size_t j = c / 128 * 64 + c % 64;  // byte of column c
      int32_t dot = 0;
      for (int e = 0; e < 4; e++) {
        const uint8_t b = w[k * ldw + j + e];
        dot += ((c % 128 < 64 ? b & 15 : b >> 4) - 8) * x[c + e];
      }
      acc += (float)dot * ls[c / 4] * bf16f(d[k * ldd + c / kQBlock]);
    }
    s[k] = acc;
  }
}
#endif

// Threads split groups of 4 rows; each group is dotted with every activation row while it is in L1.
// Software prefetch of the next group: these loops issue too few loads per byte for the hardware prefetcher
// alone to keep enough DRAM requests in flight (as for bf16/int8 in infer_matrix.cpp).
template <class Dot>
void qgemv(float* out, const QuantActs& a, const float* bias, int rows, size_t row_bytes, const uint8_t* w,
           const Dot& dot) {
  const int groups = (rows + 3) / 4, n = a.n();
#pragma omp parallel for schedule(static)
  for (int g = 0; g < groups; g++) {
    const int r0 = 4 * g, nr = std::min(4, rows - r0);
    if (g + 1 < groups) {
      const char* ahead = reinterpret_cast<const char*>(w + (size_t)(r0 + 4) * row_bytes);
      const size_t bytes = std::min(4, rows - r0 - 4) * row_bytes;
      for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(ahead + off, 0, 3);
    }
    for (int i = 0; i < n; i++) {
      float s[4];
      dot(r0, nr, a.q(i), a.lane_scale(i), a.lane_sum(i), s);
      for (int k = 0; k < nr; k++) out[(size_t)i * rows + r0 + k] = s[k] + (bias ? bias[r0 + k] : 0.0f);
    }
  }
}

}  // namespace

void qgemv_int8(float* out, const uint8_t* w, const float* scale, size_t ldw, const QuantActs& a, const float* bias,
                int rows) {
  qgemv(out, a, bias, rows, ldw, w, [&](int r0, int nr, const int8_t* x, const float* ls, const int32_t* lsum, float* s) {
    const uint8_t* wr = w + (size_t)r0 * ldw;
    if (nr == 4) dot_int8<4>(wr, ldw, x, ls, lsum, s);
    else
      for (int k = 0; k < nr; k++) dot_int8<1>(wr + k * ldw, ldw, x, ls, lsum, s + k);
    for (int k = 0; k < nr; k++) s[k] *= scale[r0 + k];
  });
}

void qgemv_q4(float* out, const uint8_t* w, const uint16_t* d, size_t ldw, size_t ldd, const QuantActs& a,
              const float* bias, int rows) {
  qgemv(out, a, bias, rows, ldw, w, [&](int r0, int nr, const int8_t* x, const float* ls, const int32_t* lsum, float* s) {
    const uint8_t* wr = w + (size_t)r0 * ldw;
    const uint16_t* dr = d + (size_t)r0 * ldd;
    if (nr == 4) dot_q4<4>(wr, dr, ldw, ldd, x, ls, lsum, s);
    else
      for (int k = 0; k < nr; k++) dot_q4<1>(wr + k * ldw, dr + k * ldd, ldw, ldd, x, ls, lsum, s + k);
  });
}

}  // namespace llm
