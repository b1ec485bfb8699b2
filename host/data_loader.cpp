#include "host/data_loader.h"

#include <glob.h>

#include <algorithm>
#include <cstring>

#include "host/binary_io.h"
#include "host/error.h"
#include "host/token_shard.h"

namespace llm {

std::vector<std::string> glob_files(const std::string& pattern) {
  if (pattern.empty()) fail("empty data file pattern");
  glob_t g;
  std::memset(&g, 0, sizeof(g));
  int rc = glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) files.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  if (files.empty()) {
    // a plain path that does not exist gets the usual "cannot open" message from InFile
    if (pattern.find_first_of("*?[") == std::string::npos) InFile probe(pattern);
    fail(pattern, ": no files match this pattern");
  }
  std::sort(files.begin(), files.end());
  return files;
}

namespace {
// Random access to one llm.c shard: the header is validated by host/token_shard.h, windows are read on demand
// (a FineWeb shard is 200 MB; the loader never holds more than one B*T+1 window).
class TokenShardReader {
 public:
  explicit TokenShardReader(const std::string& path) : n_(read_token_shard_header(path)), f_(path) {}
  uint64_t num_tokens() const { return n_; }
  const std::string& path() const { return f_.path(); }
  void read(uint64_t first, uint64_t count, uint16_t* dst) {
    if (first + count > n_) fail(path(), ": read of tokens ", first, "..", first + count, " past the end (", n_, ")");
    f_.seek(kShardHeaderBytes + 2 * first);
    f_.read(dst, 2 * count, "tokens");
  }
 private:
  uint64_t n_;
  InFile f_;
};
}  // namespace

// One open shard; tokens are read on demand (shards can be 100M tokens).
struct DataLoader::Shard {
  TokenShardReader reader;
  explicit Shard(const std::string& path) : reader(path) {}
};

// One sequential pass over a shard at open time, so a bad token id is reported before training starts
// (and before any output file exists) rather than hours into a run. Reads 1M tokens at a time.
void DataLoader::check_token_ids(Shard& s) const {
  const uint64_t n = s.reader.num_tokens();
  std::vector<uint16_t> chunk(std::min<uint64_t>(n, 1 << 20));
  for (uint64_t first = 0; first < n; first += chunk.size()) {
    const uint64_t k = std::min<uint64_t>(chunk.size(), n - first);
    s.reader.read(first, k, chunk.data());
    for (uint64_t i = 0; i < k; i++)
      if (chunk[i] >= vocab_)
        fail(s.reader.path(), ": token id ", chunk[i], " at token ", first + i, " is >= the model's vocab size ", vocab_);
  }
}

DataLoader::DataLoader(const std::string& pattern, int B, int T, int vocab_size, int rank, int world_size)
    : B_(B), T_(T), vocab_(vocab_size), rank_(rank), world_(world_size) {
  if (B <= 0 || T <= 0) fail(pattern, ": batch size ", B, " and sequence length ", T, " must be positive");
  if (world_size <= 0 || rank < 0 || rank >= world_size)
    fail(pattern, ": rank ", rank, " is not in [0, world size ", world_size, ")");
  const uint64_t need = static_cast<uint64_t>(world_size) * B * T + 1;
  for (const std::string& path : glob_files(pattern)) {
    shards_.push_back(std::make_unique<Shard>(path));
    const uint64_t n = shards_.back()->reader.num_tokens();
    if (n < need)
      fail(path, ": has ", n, " tokens, fewer than the ", need, " one batch needs (B*T", world_size > 1 ? "*ranks" : "",
           "+1 with B=", B, " T=", T, world_size > 1 ? " ranks=" + std::to_string(world_size) : std::string(),
           "); use a smaller -b/-t or more data");
    check_token_ids(*shards_.back());
  }
  buf_.resize(static_cast<size_t>(B) * T + 1);
}

DataLoader::~DataLoader() = default;

int64_t DataLoader::windows_in_shard(int64_t shard) const {
  const uint64_t n = shards_.at(shard)->reader.num_tokens();
  return static_cast<int64_t>((n - 1) / (static_cast<uint64_t>(world_) * B_ * T_));
}

int64_t DataLoader::windows_per_epoch() const {
  int64_t total = 0;
  for (int64_t i = 0; i < num_shards(); i++) total += windows_in_shard(i);
  return total;
}

int64_t DataLoader::total_tokens() const {
  int64_t total = 0;
  for (const auto& s : shards_) total += static_cast<int64_t>(s->reader.num_tokens());
  return total;
}

const std::string& DataLoader::shard_path(int64_t i) const { return shards_.at(i)->reader.path(); }

void DataLoader::set_position(const LoaderPosition& p) {
  if (p.epoch < 0 || p.shard < 0 || p.shard >= num_shards() || p.window < 0 || p.window > windows_in_shard(p.shard))
    fail("data loader position (epoch ", p.epoch, ", shard ", p.shard, ", window ", p.window,
         ") does not exist in the ", num_shards(), " shard(s) matching the data pattern");
  pos_ = p;
}

void DataLoader::next_batch(int* inputs, int* targets) {
  // skip past exhausted shards (and wrap into a new epoch after the last one)
  while (pos_.window >= windows_in_shard(pos_.shard)) {
    pos_.window = 0;
    if (++pos_.shard == num_shards()) { pos_.shard = 0; pos_.epoch++; }
  }
  const uint64_t BT = static_cast<uint64_t>(B_) * T_;
  const uint64_t start = static_cast<uint64_t>(pos_.window) * world_ * BT + static_cast<uint64_t>(rank_) * BT;
  TokenShardReader& r = shards_[pos_.shard]->reader;
  r.read(start, BT + 1, buf_.data());
  for (uint64_t i = 0; i <= BT; i++)
    if (buf_[i] >= vocab_)
      fail(r.path(), ": token id ", buf_[i], " at token ", start + i, " is >= the model's vocab size ", vocab_);
  for (uint64_t i = 0; i < BT; i++) {
    inputs[i] = buf_[i];
    targets[i] = buf_[i + 1];
  }
  pos_.window++;
}

}  // namespace llm
