// infer_qdot.h — integer decode products for the int8 and q4 weight formats (cpu/infer_matrix.h): the activation
// rows are quantised to int8 once per product and dotted with the integer weights by AVX-512 VNNI (vpdpbusd).
//
// Why: widening int8 weights to fp32 before an FMA costs ~4 instructions per 16 weights, so int8 decode was
// compute-bound at ~10 GB/s on 2 cores (memory gives ~17). vpdpbusd does 64 u8·s8 products into 16 int32 lanes in
// one instruction; with int8 activations the per-weight work is ~1/4 and the product becomes bandwidth-bound again,
// which is what a 4-bit format needs to pay off.
//
// Activations: per row, blocks of kQBlock = 32 values share scale s = max|x| / 127, q = nearbyint(x · (127/max|x|))
// (an all-zero block has s = 0, q = 0); |q·s − x| <= s/2 (+ rounding of 127/max). Rows are zero-padded to a
// multiple of kQChunk = 128, so the kernels have no tails.
// vpdpbusd multiplies UNSIGNED bytes by signed ones, so the weights are stored unsigned with an offset
// (int8: q + 128, q4: q + 8) and the offset is taken out exactly in int32 using the activation sums:
//   Σ (q_w + o)·q_x − o·Σ q_x = Σ q_w·q_x   (per 4-byte lane: lane_sum = Σ of the lane's 4 q_x).
// The kernels start each vpdpbusd from −o·lane_sum (precomputed per activation row, lane_offset), so removing the
// offset costs no instruction.
// Each int32 lane is exact (|Σ| <= 4·255·127); it is scaled in fp32 by the block's activation scale (and for q4 the
// weight block scale) and accumulated in fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace llm {

constexpr int kQBlock = 32;   // values per scale: activations and q4 weights
constexpr int kQChunk = 128;  // activation rows are zero-padded to a multiple of this
constexpr int kInt8Offset = 128, kQ4Offset = 8;  // stored weight = q + offset (unsigned for vpdpbusd)

inline int qpad(int cols, int m) { return (cols + m - 1) / m * m; }

// One thread's share of a matrix-vector product: part `index` of `count` equal runs of row groups (groups of 4
// rows). The products run no OpenMP of their own; every row's value is the same whatever the split.
struct Part {
  int index = 0, count = 1;
  // [first, end) of `groups` items for this part
  int first(int groups) const { return (int)((long long)groups * index / count); }
  int end(int groups) const { return (int)((long long)groups * (index + 1) / count); }
};

// (n, cols) fp32 rows quantised as above. Storage only grows (no allocation once warmed up).
class QuantActs {
 public:
  // weight_offset: the offset o of the weights this product multiplies with (kInt8Offset or kQ4Offset)
  void quantize(const float* x, int n, int cols, int weight_offset);
  int weight_offset() const { return offset_; }
  int n() const { return n_; }
  int cols() const { return cols_; }
  int padded() const { return pad_; }
  const int8_t* q(int i) const { return q_ + (size_t)i * pad_; }                       // (padded)
  float scale(int i, int block) const { return scale_[(size_t)i * (pad_ / kQBlock) + block]; }
  const float* lane_scale(int i) const { return lscale_ + (size_t)i * (pad_ / 4); }    // (padded/4)
  // −o·lane_sum for the weight offset o given to quantize(): the start value of each lane's vpdpbusd
  const int32_t* lane_offset(int i) const { return loff_ + (size_t)i * (pad_ / 4); }  // (padded/4)
  const float* block_scales(int i) const { return scale_.data() + (size_t)i * (pad_ / kQBlock); }  // (padded/32)
  float value(int i, int c) const { return q(i)[c] * scale(i, c / kQBlock); }          // what the products use

 private:
  int n_ = 0, cols_ = 0, pad_ = 0, offset_ = 0;
  std::vector<int8_t> qbuf_;
  std::vector<float> scale_, lsbuf_;
  std::vector<int32_t> loffbuf_;
  int8_t* q_ = nullptr;  // 64-byte aligned views into the buffers
  float* lscale_ = nullptr;
  int32_t* loff_ = nullptr;
};

// out[i·rows + r] = scale[r] · Σ_c (w[r][c] − 128)·value(i, c) (+ bias[r]) for every activation row i.
// w: (rows, ldw) bytes q + 128, ldw = qpad(cols, 64) with 128 (= 0) in the padding.
// Only the rows of `part`'s groups are written.
void qgemv_int8(float* out, const uint8_t* w, const float* scale, size_t ldw, const QuantActs& a, const float* bias,
                int rows, Part part);

// out[i·rows + r] = Σ_b d[r][b] · Σ_{c in block b} (w[r][c] − 8)·value(i, c) (+ bias[r]).
// w: (qpad(rows, 4), ldw) bytes, ldw = qpad(cols, 128) / 2; within each 64-byte chunk (128 columns) byte k holds
// column k in its low nibble and column 64 + k in its high nibble, 8 (= 0) in the padding (padding rows too).
// d: the bf16 block scales of each group of 4 rows, chunk by chunk: d[q4_scale_index(r, b, ldd)], ldd =
// qpad(cols, 128) / 32 blocks per row, qpad(rows, 4) · ldd in all; one 32-byte load gives the 4 rows × 4 blocks
// of a chunk (the kernel widens them once for the 4 rows).
inline size_t q4_scale_index(int r, int b, size_t ldd) {
  return (size_t)(r / 4) * 4 * ldd + (size_t)(b / 4) * 16 + (r % 4) * 4 + b % 4;
}
void qgemv_q4(float* out, const uint8_t* w, const uint16_t* d, size_t ldw, size_t ldd, const QuantActs& a,
              const float* bias, int rows, Part part);

}  // namespace llm
