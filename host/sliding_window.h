// sliding_window.h — the book's GPTDatasetV1 + create_dataloader_v1 (ch02) for the trainers.
//
// Why: the book trains on one tokenized text cut into fixed windows, not on llm.c's shard stream.
// Window i starts at i * stride for every start s with s < N - max_length (so the shifted target
// fits): inputs = tokens[s, s + max_length), targets = tokens[s + 1, s + max_length + 1).
// Count = ceil((N - max_length) / stride). Batches take windows in order, or in a fresh permutation
// per epoch (shuffle; Fisher-Yates driven by mt19937_64 seeded from (seed, epoch) — deterministic,
// but not torch's RandomSampler stream). drop_last drops a final partial batch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace llm {

class SlidingWindowDataset {
 public:
  // Throws llm::Error unless max_length >= 1, stride >= 1 and tokens.size() > max_length.
  SlidingWindowDataset(std::vector<int> tokens, int max_length, int stride);
  SlidingWindowDataset(const std::vector<uint16_t>& tokens, int max_length, int stride);
  size_t size() const { return count_; }
  int max_length() const { return max_length_; }
  const int* input(size_t i) const { return tokens_.data() + start(i); }       // max_length ids
  const int* target(size_t i) const { return tokens_.data() + start(i) + 1; }  // max_length ids
  size_t start(size_t i) const { return i * size_t(stride_); }

 private:
  std::vector<int> tokens_;
  int max_length_, stride_;
  size_t count_;
};

struct WindowBatch {
  int rows = 0, cols = 0;       // rows <= batch size; cols = max_length
  std::vector<int> inputs;      // (rows, cols) row-major
  std::vector<int> targets;     // (rows, cols)
};

class SlidingWindowLoader {
 public:
  SlidingWindowLoader(const SlidingWindowDataset& data, int batch_size, bool shuffle, uint64_t seed, bool drop_last);
  size_t num_batches() const;              // per epoch
  void start_epoch(uint64_t epoch);        // resets to the first batch; reshuffles when shuffling
  bool next(WindowBatch& batch);           // false once the epoch is exhausted
  const std::vector<size_t>& order() const { return order_; }  // window indices of this epoch

 private:
  const SlidingWindowDataset& data_;
  int batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  std::vector<size_t> order_;
  size_t pos_ = 0;
};

}  // namespace llm
