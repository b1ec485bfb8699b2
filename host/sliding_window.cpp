// sliding_window.cpp — the book's sliding-window dataset and loader (see sliding_window.h).
#include "host/sliding_window.h"

#include <algorithm>

#include "host/error.h"

namespace llm {

SlidingWindowDataset::SlidingWindowDataset(std::vector<int> tokens, int max_length, int stride)
    : tokens_(std::move(tokens)), max_length_(max_length), stride_(stride) {
  if (max_length < 1) fail("sliding window: max_length must be >= 1, got ", max_length);
  if (stride < 1) fail("sliding window: stride must be >= 1, got ", stride);
  if (tokens_.size() <= size_t(max_length))
    fail("sliding window: ", tokens_.size(), " tokens, need more than max_length = ", max_length);
  size_t span = tokens_.size() - size_t(max_length);  // starts s < span
  count_ = (span + size_t(stride) - 1) / size_t(stride);
}

SlidingWindowDataset::SlidingWindowDataset(const std::vector<uint16_t>& tokens, int max_length, int stride)
    : SlidingWindowDataset(std::vector<int>(tokens.begin(), tokens.end()), max_length, stride) {}

SlidingWindowLoader::SlidingWindowLoader(const SlidingWindowDataset& data, int batch_size, bool shuffle,
                                         uint64_t seed, bool drop_last)
    : data_(data), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed) {
  if (batch_size < 1) fail("sliding window: batch size must be >= 1, got ", batch_size);
  start_epoch(0);
}

size_t SlidingWindowLoader::num_batches() const {
  size_t n = data_.size(), b = size_t(batch_size_);
  return drop_last_ ? n / b : (n + b - 1) / b;
}

void SlidingWindowLoader::start_epoch(uint64_t epoch) {
  order_.resize(data_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  if (shuffle_) {
    std::seed_seq seq{uint32_t(seed_), uint32_t(seed_ >> 32), uint32_t(epoch), uint32_t(epoch >> 32)};
    std::mt19937_64 rng(seq);
    for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates with unbiased rejection sampling
      uint64_t bound = i, limit = UINT64_MAX - UINT64_MAX % bound, r;
      do r = rng(); while (r >= limit);
      std::swap(order_[i - 1], order_[size_t(r % bound)]);
    }
  }
  pos_ = 0;
}

bool SlidingWindowLoader::next(WindowBatch& batch) {
  size_t left = order_.size() - pos_;
  if (left == 0 || (drop_last_ && left < size_t(batch_size_))) return false;
  size_t rows = std::min(left, size_t(batch_size_));
  const int T = data_.max_length();
  batch.rows = int(rows);
  batch.cols = T;
  batch.inputs.resize(rows * size_t(T));
  batch.targets.resize(rows * size_t(T));
  for (size_t r = 0; r < rows; ++r) {
    size_t w = order_[pos_ + r];
    std::copy(data_.input(w), data_.input(w) + T, batch.inputs.begin() + long(r * size_t(T)));
    std::copy(data_.target(w), data_.target(w) + T, batch.targets.begin() + long(r * size_t(T)));
  }
  pos_ += rows;
  return true;
}

}  // namespace llm
