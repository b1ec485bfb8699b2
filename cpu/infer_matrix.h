// infer_matrix.h — the weight matrices of CPU inference (cpu/gpt2_infer.h) in fp32, bf16 or int8, and the
// matrix-vector / small matrix products that decode with them.
//
// Why: a decode step multiplies ONE activation row by every weight matrix, so it reads all weights once per
// token and does 2 flops per weight: it is bound by memory bandwidth, not arithmetic (dev/bench_membw measures
// the ceiling; bench_decode the result). Two levers:
//   * read at full bandwidth: AVX-512, 4 output rows per pass sharing each 16-float load of x (x stays in L1),
//     threads own contiguous row ranges (OpenMP static split), nothing allocated per token;
//   * read fewer bytes: bf16 weights (2 bytes, round to nearest even, ≤ 2^-9 relative error per weight), int8
//     with one fp32 scale per output row (1 byte; scale = max|row| / 127, error ≤ scale / 2 per weight) or q4
//     (4 bits + a bf16 scale per block of 32 along the row: 4.5 bits; see below).
//     bf16 products are computed in fp32 from the widened weights with fp32 activations; int8 and q4 quantise the
//     activations to int8 (blocks of 32) and use the VNNI integer products of cpu/infer_qdot.h.
// q4 (symmetric, like llama.cpp's q4_0): per block of 32 weights, m = the weight of largest magnitude (signed),
// d = bf16(m / -8), q = clamp(nearbyint(w · (1/d)), -8, 7), stored as the nibble q + 8; weight = q·d. |q·d − w| ≤ |d|/2,
// except weights within |d|/2 of −m, which clamp to 7 (error ≤ |d|). An all-zero block has d = 0.
// fp32 keeps a pointer to the caller's weights (no copy); the other formats own their packed copy.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cpu/infer_qdot.h"

namespace llm {

enum class WeightFormat { kFp32, kBf16, kInt8, kQ4 };
WeightFormat parse_weight_format(const std::string& s);  // "fp32" | "bf16" | "int8" | "q4", else llm::Error
const char* weight_format_name(WeightFormat f);

class InferMatrix {
 public:
  // w: (rows, cols) row-major fp32 (must outlive this object in fp32 mode).
  void set(const float* w, int rows, int cols, WeightFormat f);
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  WeightFormat format() const { return f_; }
  size_t bytes() const;  // bytes a matrix-vector product streams (weights, padding included, + scales)

  // out (n, rows) = in (n, cols) · Wᵀ (+ bias (rows) when not null). n == 1: the bandwidth-bound matrix-vector
  // product; n > 1: each group of weight rows is dotted with all n input rows while cached (prefill). int8 / q4
  // quantise `in` first (QuantActs) and give the same value for a row whatever n is.
  void forward(float* out, const float* in, const float* bias, int n) const;

  // One thread's share of out (rows) = W · in (+ bias) for ONE input row, inside a parallel team: every thread
  // calls it with the same arguments and its own part, and waits at a barrier before anyone reads `out`. int8 / q4
  // quantise `in` into the calling thread's own buffer (the same values in every thread, and as forward()).
  // Returns the [first, end) rows this part wrote. Values are bit-identical to forward(…, n = 1).
  std::pair<int, int> forward_part(float* out, const float* in, const float* bias, Part part) const;

  // Row r widened to fp32 (exactly the values forward() multiplies with).
  void row(int r, float* dst) const;

 private:
  bool quantises_input() const { return f_ == WeightFormat::kInt8 || f_ == WeightFormat::kQ4; }
  int weight_offset() const { return f_ == WeightFormat::kInt8 ? kInt8Offset : kQ4Offset; }  // (int8 / q4)
  // `part` of the rows of the product with one input row `in` (fp32 / bf16) or with the quantised rows `acts`
  // (int8 / q4, any number of rows)
  void product(float* out, const float* in, const float* bias, Part part, const QuantActs* acts) const;

  WeightFormat f_ = WeightFormat::kFp32;
  int rows_ = 0, cols_ = 0;
  const float* f32_ = nullptr;
  std::vector<uint16_t> bf16_;
  std::vector<uint8_t> u8_;           // int8: (rows, ld_) q + 128; q4: (qpad(rows, 4), ld_) nibble pairs (infer_qdot.h)
  std::vector<float> scale_;          // int8: per-row scale
  std::vector<uint16_t> bscale_;      // q4: (qpad(rows, 4) · ldd_) bf16 block scales, q4_scale_index order
  size_t ld_ = 0, ldd_ = 0;
  mutable std::vector<float> wide_;   // (threads, cols) widened rows for n > 1 (allocated once)
};

}  // namespace llm
