// data_loader.h — llm.c-style batches over token shards: B×T input windows, targets shifted by one.
//
// Why this shape: it matches llm.c's DataLoader so the CPU and GPU trainers see the same tokens in the same
// order, and so a run can be split across ranks without overlap. The shards matching a glob pattern are
// taken in sorted order. A "global window" is world·B·T consecutive tokens; rank r reads the B·T+1 tokens
// starting at window·world·B·T + r·B·T of the current shard (the +1 gives the last target). A shard holds
// floor((N-1) / (world·B·T)) windows; the loader walks them in order, then moves to the next shard, and after
// the last shard starts a new epoch at shard 0 (no shuffling). The val loader is the same class, reset() to
// the start before each evaluation, exactly like llm.c's val loader.
// Every token is checked against the vocabulary when the shards are opened (one sequential pass) and again as
// it is read: an id >= vocab_size is an error naming the shard and the token's position.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llm {

// Where the loader is; saved in the training state so resume continues with the very next batch.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t shard = 0;   // index into the sorted shard list
  int64_t window = 0;  // next global window inside that shard
};

// Sorted list of files matching a glob pattern; fails naming the pattern when nothing matches.
std::vector<std::string> glob_files(const std::string& pattern);

class DataLoader {
 public:
  // Opens and validates every shard (header, size, at least world·B·T+1 tokens). vocab_size bounds token ids.
  DataLoader(const std::string& pattern, int B, int T, int vocab_size, int rank = 0, int world_size = 1);
  ~DataLoader();

  // Fills inputs and targets (each B·T ints, row-major (B,T)) and advances to the next window.
  void next_batch(int* inputs, int* targets);
  void reset() { pos_ = LoaderPosition{}; }
  LoaderPosition position() const { return pos_; }
  void set_position(const LoaderPosition& p);  // validated against the shard list

  int B() const { return B_; }
  int T() const { return T_; }
  int64_t num_shards() const { return static_cast<int64_t>(shards_.size()); }
  int64_t windows_in_shard(int64_t shard) const;
  int64_t windows_per_epoch() const;  // batches this rank sees in one pass over all shards
  int64_t total_tokens() const;       // tokens in all shards
  const std::string& shard_path(int64_t i) const;

 private:
  struct Shard;
  void check_token_ids(Shard& s) const;
  int B_, T_, vocab_, rank_, world_;
  std::vector<std::unique_ptr<Shard>> shards_;
  LoaderPosition pos_;
  std::vector<uint16_t> buf_;  // B·T+1 tokens
};

}  // namespace llm
