// infer_matrix.h — the weight matrices of CPU inference (cpu/gpt2_infer.h) in fp32, bf16 or int8, and the
// matrix-vector / small matrix products that decode with them.
//
// Why: a decode step multiplies ONE activation row by every weight matrix, so it reads all weights once per
// token and does 2 flops per weight: it is bound by memory bandwidth, not arithmetic (dev/bench_membw measures
// the ceiling; bench_decode the result). Two levers:
//   * read at full bandwidth: AVX-512, 4 output rows per pass sharing each 16-float load of x (x stays in L1),
//     threads own contiguous row ranges (OpenMP static split), nothing allocated per token;
//   * read fewer bytes: bf16 weights (2 bytes, round to nearest even, ≤ 2^-9 relative error per weight) or int8
//     with one fp32 scale per output row (1 byte; scale = max|row| / 127, error ≤ scale / 2 per weight). The
//     products are computed in fp32 from the widened weights; activations stay fp32.
// fp32 keeps a pointer to the caller's weights (no copy); bf16 / int8 own their packed copy.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llm {

enum class WeightFormat { kFp32, kBf16, kInt8 };
WeightFormat parse_weight_format(const std::string& s);  // "fp32" | "bf16" | "int8", else llm::Error
const char* weight_format_name(WeightFormat f);

class InferMatrix {
 public:
  // w: (rows, cols) row-major fp32 (must outlive this object in fp32 mode).
  void set(const float* w, int rows, int cols, WeightFormat f);
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  WeightFormat format() const { return f_; }
  size_t bytes() const;  // bytes a matrix-vector product streams (weights + int8 scales)

  // out (n, rows) = in (n, cols) · Wᵀ (+ bias (rows) when not null). n == 1: the bandwidth-bound matrix-vector
  // product; n > 1: every weight row is widened once and dotted with all n input rows (prefill).
  void forward(float* out, const float* in, const float* bias, int n) const;

  // Row r widened to fp32 (exactly the values forward() multiplies with).
  void row(int r, float* dst) const;

 private:
  WeightFormat f_ = WeightFormat::kFp32;
  int rows_ = 0, cols_ = 0;
  const float* f32_ = nullptr;
  std::vector<uint16_t> bf16_;
  std::vector<int8_t> i8_;
  std::vector<float> scale_;          // int8: per-row scale
  mutable std::vector<float> wide_;   // (threads, cols) widened rows for n > 1 (allocated once)
};

}  // namespace llm
