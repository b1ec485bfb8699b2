// infer_qdot.cpp — activation quantisation and the VNNI int8 / q4 products (see infer_qdot.h). Without AVX-512
// VNNI the same integer arithmetic runs as plain loops.
#include "cpu/infer_qdot.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/error.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
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

// One block: q[c] = nearbyint(x[c] · 127/max|x|) for c < len, 0 up to kQBlock; per lane l (8): off[l] =
// −o·(q[4l] + … + q[4l+3]), lscale[l] = the scale. Returns the scale max|x| / 127.
// The AVX-512 form gives the same bytes: the multiply is the same fp32 operation and the conversion rounds to
// nearest even, as nearbyint does in the default rounding mode.
float quantize_block(int8_t* q, int32_t* off, float* lscale, const float* x, int len, int o) {
#if LLM_QDOT_VNNI
  const __mmask16 m0 = (__mmask16)((1u << std::min(len, 16)) - 1);
  const __mmask16 m1 = (__mmask16)((1u << std::max(0, std::min(len - 16, 16))) - 1);
  const __m512 x0 = _mm512_maskz_loadu_ps(m0, x), x1 = _mm512_maskz_loadu_ps(m1, x + 16);  // padding reads as 0
  const float mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
  const __m512 inv = _mm512_set1_ps(mx > 0.0f ? 127.0f / mx : 0.0f);
  const __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, inv)));  // |.| <= 127: no saturation
  const __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, inv)));
  const __m256i q32 = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), q32);
  // lane sums: 1 (unsigned) · q (signed), 4 bytes per int32 lane
  const __m256i sum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q32);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(off), _mm256_mullo_epi32(sum, _mm256_set1_epi32(-o)));
  const float scale = mx / 127.0f;
  _mm256_storeu_ps(lscale, _mm256_set1_ps(scale));
  return scale;
#else
  float mx = 0.0f;
  for (int c = 0; c < len; c++) mx = std::max(mx, std::fabs(x[c]));
  const float inv = mx > 0.0f ? 127.0f / mx : 0.0f, scale = mx / 127.0f;
  for (int c = 0; c < len; c++) q[c] = (int8_t)std::nearbyint(x[c] * inv);  // |.| <= 127
  for (int c = len; c < kQBlock; c++) q[c] = 0;                             // padding
  for (int l = 0; l < kQBlock / 4; l++) {
    off[l] = -o * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
    lscale[l] = scale;
  }
  return scale;
#endif
}

}  // namespace

void QuantActs::quantize(const float* x, int n, int cols, int weight_offset) {
  n_ = n;
  cols_ = cols;
  offset_ = weight_offset;
  pad_ = qpad(cols, kQChunk);
  const int nb = pad_ / kQBlock, nl = pad_ / 4;
  q_ = aligned(qbuf_, (size_t)n * pad_);
  if (scale_.size() < (size_t)n * nb) scale_.resize((size_t)n * nb);
  lscale_ = aligned(lsbuf_, (size_t)n * nl);
  loff_ = aligned(loffbuf_, (size_t)n * nl);
  for (int i = 0; i < n; i++) {
    const float* xi = x + (size_t)i * cols;
    int8_t* qi = q_ + (size_t)i * pad_;
    for (int b = 0; b < nb; b++) {
      const int c0 = b * kQBlock, len = std::max(0, std::min(kQBlock, cols - c0));
      const size_t l0 = (size_t)i * nl + c0 / 4;  // the block's 8 lanes
      scale_[(size_t)i * nb + b] = quantize_block(qi + c0, loff_ + l0, lscale_ + l0, xi + c0, len, weight_offset);
    }
  }
}

namespace {

#if LLM_QDOT_VNNI
// s[k] = Σ_c (w[k·ldw + c] − 128)·value(c) for R rows; ldw a multiple of 64. off: −128·lane_sum.
template <int R>
inline void dot_int8(const uint8_t* w, size_t ldw, const int8_t* x, const float* ls, const int32_t* off, float* s) {
  __m512 acc[R];
  for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
  for (size_t c = 0; c < ldw; c += 64) {
    const __m512i xv = _mm512_load_si512(x + c);
    const __m512 sc = _mm512_load_ps(ls + c / 4);
    const __m512i o = _mm512_load_si512(off + c / 4);  // the weight offset, taken out as the lanes' start value
    for (int k = 0; k < R; k++) {
      const __m512i d = _mm512_dpbusd_epi32(o, _mm512_loadu_si512(w + k * ldw + c), xv);
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sc, acc[k]);
    }
  }
  for (int k = 0; k < R; k++) s[k] = _mm512_reduce_add_ps(acc[k]);
}

// s[k] = Σ_b d_kb Σ_{c in b} (nibble − 8)·value(c) for the 4 rows of one group; ldw bytes per row (a multiple of
// 64), d: the group's scales (q4_scale_index layout), xs: the activation block scales, off: −8·lane_sum.
// Per 128-column chunk and row: 2 vpdpbusd (low nibbles = columns 0-63, high = 64-127; lanes 0-7 are one block of
// 32, lanes 8-15 the next), 2 conversions and 2 FMAs with the combined scale d_kb·xs_b, which is formed once per
// chunk for all 4 rows (16 lanes = 4 rows × 4 blocks) and spread to the lanes by one permute per half.
inline void dot_q4x4(const uint8_t* w, const uint16_t* d, size_t ldw, const int8_t* x, const float* xs,
                     const int32_t* off, float* s) {
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  __m512i spread[8];  // row k, half h: lanes 0-7 take lane 4k + 2h of the combined scales, lanes 8-15 4k + 2h + 1
  for (int k = 0; k < 4; k++)
    for (int h = 0; h < 2; h++) {
      const int a = 4 * k + 2 * h;
      spread[2 * k + h] = _mm512_setr_epi32(a, a, a, a, a, a, a, a, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1);
    }
  __m512 acc[4];
  for (int k = 0; k < 4; k++) acc[k] = _mm512_setzero_ps();
  for (size_t j = 0; j < ldw; j += 64) {  // j: byte offset; columns 2j .. 2j+127, blocks j/16 .. j/16+3
    const __m512i x0 = _mm512_load_si512(x + 2 * j), x1 = _mm512_load_si512(x + 2 * j + 64);
    const __m512i o0 = _mm512_load_si512(off + j / 2), o1 = _mm512_load_si512(off + j / 2 + 16);
    // 16 bf16 scales (4 rows × 4 blocks) widened (bf16 = the high half of an fp32), times the activation scales
    const __m256i d16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + j / 4));
    const __m512 wd = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(d16), 16));
    const __m512 sd = _mm512_mul_ps(wd, _mm512_broadcast_f32x4(_mm_loadu_ps(xs + j / 16)));
    for (int k = 0; k < 4; k++) {
      const __m512i wv = _mm512_loadu_si512(w + k * ldw + j);
      const __m512i lo = _mm512_and_si512(wv, lo4), hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), lo4);
      const __m512i d0 = _mm512_dpbusd_epi32(o0, lo, x0), d1 = _mm512_dpbusd_epi32(o1, hi, x1);
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), _mm512_permutexvar_ps(spread[2 * k], sd), acc[k]);
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_permutexvar_ps(spread[2 * k + 1], sd), acc[k]);
    }
  }
  for (int k = 0; k < 4; k++) s[k] = _mm512_reduce_add_ps(acc[k]);
}
#else
template <int R>
inline void dot_int8(const uint8_t* w, size_t ldw, const int8_t* x, const float* ls, const int32_t*, float* s) {
  for (int k = 0; k < R; k++) {
    float acc = 0.0f;
    for (size_t l = 0; l < ldw / 4; l++) {
      int32_t d = 0;
      for (int e = 0; e < 4; e++) d += ((int32_t)w[k * ldw + 4 * l + e] - kInt8Offset) * x[4 * l + e];
      acc += (float)d * ls[l];
    }
    s[k] = acc;
  }
}

// The same integer lanes and the same combined scales as the AVX-512 kernel (the fp32 sums run in another order).
inline void dot_q4x4(const uint8_t* w, const uint16_t* d, size_t ldw, const int8_t* x, const float* xs,
                     const int32_t*, float* s) {
  for (int k = 0; k < 4; k++) {
    float acc = 0.0f;
    for (size_t c = 0; c < 2 * ldw; c += 4) {
      const size_t j = c / 128 * 64 + c % 64;  // byte of column c
      int32_t dot = 0;
      for (int e = 0; e < 4; e++) {
        const uint8_t b = w[k * ldw + j + e];
        dot += ((c % kQChunk < 64 ? b & 15 : b >> 4) - kQ4Offset) * x[c + e];
      }
      const int blk = (int)(c / kQBlock);
      acc += (float)dot * (bf16f(d[q4_scale_index(k, blk, 0)]) * xs[blk]);  // row k of this group (ldd unused)
    }
    s[k] = acc;
  }
}
#endif

// This part's groups of 4 rows; each group is dotted with every activation row while it is in L1.
// Software prefetch of the next group: these loops issue too few loads per byte for the hardware prefetcher
// alone to keep enough DRAM requests in flight (as for bf16/int8 in infer_matrix.cpp).
template <class Dot>
void qgemv(float* out, const QuantActs& a, const float* bias, int rows, size_t row_bytes, const uint8_t* w,
           const Dot& dot, Part part) {
  const int groups = (rows + 3) / 4, n = a.n(), g1 = part.end(groups);
  for (int g = part.first(groups); g < g1; g++) {
    const int r0 = 4 * g, nr = std::min(4, rows - r0);
    if (g + 1 < g1) {
      const char* ahead = reinterpret_cast<const char*>(w + (size_t)(r0 + 4) * row_bytes);
      const size_t bytes = std::min(4, rows - r0 - 4) * row_bytes;
      for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(ahead + off, 0, 3);
    }
    for (int i = 0; i < n; i++) {
      float s[4];
      dot(r0, nr, i, s);
      for (int k = 0; k < nr; k++) out[(size_t)i * rows + r0 + k] = s[k] + (bias ? bias[r0 + k] : 0.0f);
    }
  }
}

}  // namespace

void qgemv_int8(float* out, const uint8_t* w, const float* scale, size_t ldw, const QuantActs& a, const float* bias,
                int rows, Part part) {
  if (a.weight_offset() != kInt8Offset) fail("qgemv_int8: activations quantised for weight offset ", a.weight_offset());
  qgemv(out, a, bias, rows, ldw, w, [&](int r0, int nr, int i, float* s) {
    const uint8_t* wr = w + (size_t)r0 * ldw;
    if (nr == 4) dot_int8<4>(wr, ldw, a.q(i), a.lane_scale(i), a.lane_offset(i), s);
    else
      for (int k = 0; k < nr; k++) dot_int8<1>(wr + k * ldw, ldw, a.q(i), a.lane_scale(i), a.lane_offset(i), s + k);
    for (int k = 0; k < nr; k++) s[k] *= scale[r0 + k];
  }, part);
}

void qgemv_q4(float* out, const uint8_t* w, const uint16_t* d, size_t ldw, size_t ldd, const QuantActs& a,
              const float* bias, int rows, Part part) {
  if (a.weight_offset() != kQ4Offset) fail("qgemv_q4: activations quantised for weight offset ", a.weight_offset());
  // rows are stored padded to a multiple of 4 (zero weights), so every group runs the 4-row kernel
  qgemv(out, a, bias, rows, ldw, w, [&](int r0, int, int i, float* s) {
    dot_q4x4(w + (size_t)r0 * ldw, d + (size_t)r0 * ldd, ldw, a.q(i), a.block_scales(i), a.lane_offset(i), s);
  }, part);
}

}  // namespace llm
