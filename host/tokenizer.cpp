// tokenizer.cpp — GPT-2 BPE encode/decode (see tokenizer.h for the rules).
#include "host/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <exception>
#include <queue>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "host/error.h"
#include "host/tokenizer_impl.h"

namespace llm {
namespace tok {

// ---------------------------------------------------------------------------------------------
// Hash tables

void StrTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  if (cap > slots_.size()) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    used_ = 0;
    for (const Slot& s : old)
      if (s.len) {  // re-place without copying the key again
        size_t i = s.hash & (cap - 1);
        while (slots_[i].len) i = (i + 1) & (cap - 1);
        slots_[i] = s;
        ++used_;
      }
  }
}

void StrTable::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

const uint32_t* StrTable::find(std::string_view key, uint64_t h) const {
  if (slots_.empty()) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (!s.len) return nullptr;
    if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), s.len) == 0)
      return &s.value;
  }
}

void StrTable::insert(std::string_view key, uint64_t h, uint32_t value) {
  if (2 * (used_ + 1) > slots_.size()) grow();
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].len) i = (i + 1) & mask;
  slots_[i] = Slot{h, uint32_t(arena_.size()), uint32_t(key.size()), value};
  arena_.append(key.data(), key.size());
  ++used_;
}

void StrTable::clear() {
  slots_.clear();
  arena_.clear();
  used_ = 0;
}

void PairTable::build(const std::vector<uint64_t>& keys, const std::vector<int>& values) {
  size_t cap = 16;
  shift_ = 60;
  while (cap < 2 * keys.size()) cap *= 2, --shift_;
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
  for (size_t k = 0; k < keys.size(); ++k) {
    size_t i = (keys[k] * 0x9E3779B97F4A7C15ull) >> shift_;
    while (slots_[i].value >= 0 && slots_[i].key != keys[k]) i = (i + 1) & mask_;
    slots_[i] = Entry{keys[k], values[k]};
  }
}

void byte_to_unicode(uint32_t out[256]) {
  // Printable Latin-1 bytes stand for themselves; the other 68 get U+0100.. in byte order.
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    out[b] = printable ? uint32_t(b) : next++;
  }
}

// ---------------------------------------------------------------------------------------------
// UTF-8: end of the maximal valid run starting at i (RFC 3629, the definition Rust's str uses).

static size_t valid_utf8_end(const unsigned char* s, size_t i, size_t n) {
  while (i < n) {
    // ASCII fast path, 8 bytes at a time
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;  // no surrogates
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;  // <= U+10FFFF
    else return i;
    if (i + need >= n) return i;  // sequence runs past the end
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k <= need; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += need + 1;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Per-thread scratch: PCRE2 match data, JIT stack and the piece cache.

namespace {

// Front cache: the short pieces this thread met recently -> their ids, with the key and the ids inline
// in one 32-byte entry. Why: with ~3.3 bytes per piece nearly every piece needs a table lookup, and the
// vocabulary table (3 MiB of 24-byte slots + the key arena) and the piece cache do not fit in a core's
// L2, so a lookup there costs one or two cache misses (slot, then the key bytes for the memcmp); perf
// showed the first probe load of the vocabulary table as the hottest instruction of the encoder, and
// those misses go to the L3 / memory that both cores share. This table is 2-way set associative, one
// set per 64-byte line, 256 KiB per thread: most pieces are found with one line touched and no string
// compare (cachegrind, warm encode: ~30% fewer L1d misses, ~4% fewer instructions). Entries are filled
// only with what the full path computed for that exact key, so the ids never depend on what is in it.
struct FrontEntry {
  uint64_t w0 = 0, w1 = 0;  // the piece's bytes, zero padded (pieces of 2..16 bytes)
  uint8_t len = 0;          // 0 marks an empty entry (pieces here have >= 2 bytes)
  uint8_t count = 0;        // ids in use
  uint16_t ids[6] = {};     // ids < 65536 (GPT-2 has 50257); pieces with larger ids are not kept here
};
struct alignas(64) FrontSet {
  FrontEntry e[2];  // e[0] is the more recently filled
};
constexpr int kFrontBits = 12;  // 4096 sets = 8192 entries
constexpr size_t kFrontMaxLen = 16, kFrontMaxIds = 6;

struct Scratch {
  uint64_t owner = 0;
  std::vector<FrontSet> front;
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jstack = nullptr;
  StrTable cache;           // piece -> offset of [count, ids...] in cache_ids
  std::vector<int> cache_ids;
  std::vector<int> work;    // merge-loop buffers
  std::vector<int> rank;
  ~Scratch() {
    if (md) pcre2_match_data_free(md);
    if (mctx) pcre2_match_context_free(mctx);
    if (jstack) pcre2_jit_stack_free(jstack);
  }
  void prepare(uint64_t uid) {
    if (!md) {
      md = pcre2_match_data_create(1, nullptr);
      mctx = pcre2_match_context_create(nullptr);
      jstack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
      if (!md || !mctx || !jstack) throw std::bad_alloc();
      pcre2_jit_stack_assign(mctx, nullptr, jstack);
    }
    if (owner != uid) {  // front entries hold ids of the tokenizer that filled them
      front.assign(size_t(1) << kFrontBits, FrontSet{});
    }
    if (owner != uid || cache.arena_bytes() > (64u << 20)) {  // another tokenizer, or too big
      cache.clear();
      cache_ids.clear();
      owner = uid;
    }
  }
};

thread_local Scratch t_scratch;

constexpr size_t kSmallPiece = 64;  // pieces up to this many bytes use the O(n^2) scan

}  // namespace
}  // namespace tok

// ---------------------------------------------------------------------------------------------
// BPE merge of one piece

namespace {

using tok::Scratch;

// Merge loop for short pieces: ids/rank arrays, repeated scan for the lowest rank (leftmost on ties).
void merge_small(const Tokenizer::Impl& T, const unsigned char* s, size_t n, Scratch& sc,
                 std::vector<int>& out) {
  std::vector<int>& ids = sc.work;
  std::vector<int>& rank = sc.rank;
  ids.resize(n);
  rank.resize(n);
  for (size_t i = 0; i < n; ++i) ids[i] = T.byte_token[s[i]];
  size_t m = n;
  for (size_t i = 0; i + 1 < m; ++i) {
    int r = T.pairs.find(ids[i], ids[i + 1]);
    rank[i] = r < 0 ? INT_MAX : r;
  }
  while (m > 1) {
    size_t best = 0;
    int best_rank = INT_MAX;
    for (size_t i = 0; i + 1 < m; ++i)
      if (rank[i] < best_rank) best_rank = rank[i], best = i;
    if (best_rank == INT_MAX) break;
    ids[best] = best_rank;  // rank == id of the merged token
    for (size_t i = best + 1; i + 1 < m; ++i) ids[i] = ids[i + 1], rank[i] = rank[i + 1];
    --m;
    if (best + 1 < m) {
      int r = T.pairs.find(ids[best], ids[best + 1]);
      rank[best] = r < 0 ? INT_MAX : r;
    } else {
      rank[best] = INT_MAX;
    }
    if (best > 0) {
      int r = T.pairs.find(ids[best - 1], ids[best]);
      rank[best - 1] = r < 0 ? INT_MAX : r;
    }
  }
  out.insert(out.end(), ids.begin(), ids.begin() + m);
}

// Merge loop for long pieces: a linked list of parts keyed by start byte and a min-heap of
// (rank, start) candidates, invalidated lazily. Same order of merges as merge_small.
void merge_large(const Tokenizer::Impl& T, const unsigned char* s, size_t n, std::vector<int>& out) {
  std::vector<int> tokv(n), nxt(n), prv(n);
  for (size_t i = 0; i < n; ++i) {
    tokv[i] = T.byte_token[s[i]];
    nxt[i] = int(i) + 1;  // n means "none"
    prv[i] = int(i) - 1;
  }
  struct Cand {
    int rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int p) {
    if (p < 0 || nxt[p] >= int(n)) return;
    int r = T.pairs.find(tokv[p], tokv[nxt[p]]);
    if (r >= 0) heap.push(Cand{r, p, tokv[p], tokv[nxt[p]]});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int(i));
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int p = c.pos;
    if (tokv[p] != c.left || nxt[p] >= int(n) || tokv[nxt[p]] != c.right) continue;  // stale
    int q = nxt[p];
    tokv[p] = c.rank;
    tokv[q] = -1;
    nxt[p] = nxt[q];
    if (nxt[p] < int(n)) prv[nxt[p]] = p;
    push(prv[p]);
    push(p);
  }
  for (int p = 0; p < int(n); p = nxt[p]) out.push_back(tokv[p]);
}

// The full path for a piece of >= 2 bytes: vocabulary, then the piece cache, then the merge loop.
void encode_piece_slow(const Tokenizer::Impl& T, const unsigned char* s, size_t n, Scratch& sc,
                       std::vector<int>& out) {
  std::string_view key(reinterpret_cast<const char*>(s), n);
  uint64_t h = tok::hash_bytes(key.data(), n);
  if (const uint32_t* id = T.vocab.find(key, h)) {
    out.push_back(int(*id));
    return;
  }
  if (const uint32_t* off = sc.cache.find(key, h)) {
    const int* p = sc.cache_ids.data() + *off;
    out.insert(out.end(), p + 1, p + 1 + p[0]);
    return;
  }
  size_t before = out.size();
  if (n <= tok::kSmallPiece) merge_small(T, s, n, sc, out);
  else merge_large(T, s, n, out);
  size_t cnt = out.size() - before;
  sc.cache.insert(key, h, uint32_t(sc.cache_ids.size()));
  sc.cache_ids.push_back(int(cnt));
  sc.cache_ids.insert(sc.cache_ids.end(), out.begin() + before, out.end());
}

// The low k bytes of w (k <= 8).
inline uint64_t low_bytes(uint64_t w, size_t k) { return k >= 8 ? w : w & ((uint64_t(1) << (8 * k)) - 1); }

// One pre-token piece -> ids, through the front cache, the whole-piece lookup and the piece cache.
// `avail` >= n bytes are readable from s (the rest of the valid run).
inline void encode_piece(const Tokenizer::Impl& T, const unsigned char* s, size_t n, size_t avail, Scratch& sc,
                         std::vector<int>& out) {
  if (n == 1) {
    out.push_back(T.byte_token[s[0]]);
    return;
  }
  tok::FrontSet* set = nullptr;
  uint64_t w0 = 0, w1 = 0;
  if (n <= tok::kFrontMaxLen) {
    if (avail >= 16) {  // two unaligned loads, masked to the piece; else copy the piece byte-exact
      std::memcpy(&w0, s, 8);
      std::memcpy(&w1, s + 8, 8);
      w0 = low_bytes(w0, n);
      w1 = n > 8 ? low_bytes(w1, n - 8) : 0;
    } else {
      unsigned char b[16] = {};
      std::memcpy(b, s, n);
      std::memcpy(&w0, b, 8);
      std::memcpy(&w1, b + 8, 8);
    }
    // multiply-shift hash: the top bits of the product depend on every byte of w0 (and of w1 via its own
    // multiply); the length separates keys that differ only in trailing zero bytes
    uint64_t h = (w0 ^ (w1 * 0x9E3779B97F4A7C15ull) ^ n) * 0xbf58476d1ce4e5b9ull;
    set = &sc.front[size_t(h >> (64 - tok::kFrontBits))];
    for (const tok::FrontEntry& e : set->e)
      if (e.w0 == w0 && e.w1 == w1 && e.len == n) {
        if (e.count == 1) out.push_back(int(e.ids[0]));  // most pieces here are one vocabulary token
        else out.insert(out.end(), e.ids, e.ids + e.count);
        return;
      }
  }
  size_t before = out.size();
  encode_piece_slow(T, s, n, sc, out);
  if (set) {
    size_t cnt = out.size() - before;
    if (cnt > tok::kFrontMaxIds) return;
    tok::FrontEntry e;
    e.w0 = w0, e.w1 = w1, e.len = uint8_t(n), e.count = uint8_t(cnt);
    for (size_t k = 0; k < cnt; ++k) {
      if (out[before + k] > 0xFFFF) return;
      e.ids[k] = uint16_t(out[before + k]);
    }
    set->e[1] = set->e[0];  // the older entry goes
    set->e[0] = e;
  }
}

// A run of valid UTF-8 without special tokens: regex pieces -> BPE.
void encode_valid_run(const Tokenizer::Impl& T, const unsigned char* s, size_t n, Scratch& sc,
                      std::vector<int>& out) {
  size_t pos = 0;
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
  while (pos < n) {
    int rc = T.jit ? pcre2_jit_match(T.re, s, n, pos, PCRE2_NO_UTF_CHECK, sc.md, sc.mctx)
                   : pcre2_match(T.re, s, n, pos, PCRE2_NO_UTF_CHECK, sc.md, sc.mctx);
    size_t end;
    if (rc > 0 && ov[0] == pos && ov[1] > pos) {
      end = ov[1];
    } else if (rc == PCRE2_ERROR_NOMATCH || rc > 0) {
      // Cannot happen (every character matches some branch); keep going one character at a time.
      end = pos + 1;
      while (end < n && (s[end] & 0xC0) == 0x80) ++end;
    } else {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("tokenizer: regex match failed at byte ", pos, ": ", reinterpret_cast<const char*>(msg));
    }
    encode_piece(T, s + pos, end - pos, n - pos, sc, out);
    pos = end;
  }
}

// Text without special-token handling: valid runs through the regex, invalid bytes as byte tokens.
void encode_ordinary(const Tokenizer::Impl& T, std::string_view text, Scratch& sc, std::vector<int>& out) {
  const unsigned char* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size(), i = 0;
  while (i < n) {
    size_t e = tok::valid_utf8_end(s, i, n);
    if (e > i) encode_valid_run(T, s + i, e - i, sc, out);
    if (e >= n) break;
    out.push_back(T.byte_token[s[e]]);  // an invalid byte is its own token
    i = e + 1;
  }
}

constexpr std::string_view kEotText = "<|endoftext|>";

// A few persistent threads for encode_parallel, so that each keeps its thread_local piece cache.
class WorkerPool {
 public:
  std::future<void> submit(std::function<void()> fn) {
    auto task = std::make_shared<std::packaged_task<void()>>(std::move(fn));
    std::future<void> f = task->get_future();
    {
      std::lock_guard<std::mutex> lk(m_);
      queue_.push_back([task] { (*task)(); });
      // one worker per outstanding task, at most 64
      if (threads_.size() < 64 && threads_.size() < queue_.size() + busy_) threads_.emplace_back([this] { loop(); });
    }
    cv_.notify_one();
    return f;
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
      }
      job();
      std::lock_guard<std::mutex> lk(m_);
      --busy_;
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t busy_ = 0;
  bool stop_ = false;
};

WorkerPool& worker_pool() {
  static WorkerPool pool;
  return pool;
}

[[noreturn]] void disallowed_special(size_t offset) {
  fail("input contains the special token <|endoftext|> at byte offset ", offset,
       " (disallowed by default; allow it or encode it as text)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

int Tokenizer::vocab_size() const { return int(impl_->tokens.size()); }

void Tokenizer::encode_append(std::string_view text, SpecialMode mode, std::vector<int>& out,
                              size_t offset_base) const {
  const Impl& T = *impl_;
  Scratch& sc = tok::t_scratch;
  sc.prepare(T.uid);
  if (mode == SpecialMode::kAsText) {
    encode_ordinary(T, text, sc, out);
    return;
  }
  size_t pos = 0;
  for (;;) {
    size_t hit = text.find(kEotText, pos);
    if (hit != std::string_view::npos && mode == SpecialMode::kDisallowed)
      disallowed_special(offset_base + hit);
    size_t end = hit == std::string_view::npos ? text.size() : hit;
    encode_ordinary(T, text.substr(pos, end - pos), sc, out);
    if (hit == std::string_view::npos) break;
    out.push_back(T.eot);
    pos = hit + kEotText.size();
  }
}

std::vector<int> Tokenizer::encode(std::string_view text, SpecialMode mode) const {
  std::vector<int> out;
  out.reserve(text.size() / 3 + 16);
  encode_append(text, mode, out);
  return out;
}

// Parallel encode. Why it is shaped like this (each point was a measured 2-thread loss):
// - the text is cut at safe split points into ~8 chunks per thread (>= 64 KiB each) that the threads
//   (the caller included) take in turn from an atomic counter, so a slow thread (another process on
//   its core, a part of the text with costlier pieces) does not hold the others up;
// - each thread appends to its own output buffer, 64-byte aligned: buffers sitting next to each
//   other (vector headers in one cache line) bounced that line between the cores on every token;
// - chunks remember (thread, start, count) and are copied into the result in chunk order;
// - workers are persistent, so their thread_local piece caches stay warm between calls.
std::vector<int> Tokenizer::encode_parallel(std::string_view text, SpecialMode mode, int threads) const {
  constexpr size_t kMinChunk = 1u << 16;
  if (threads > 64) threads = 64;
  if (threads <= 1 || text.size() < 2 * kMinChunk) return encode(text, mode);
  // chunk boundaries: cuts[c]..cuts[c+1]
  const size_t step = std::max(kMinChunk, text.size() / (size_t(threads) * 8));
  std::vector<size_t> cuts{0};
  for (size_t target = step; target + kMinChunk / 2 < text.size(); target += step) {
    size_t p = find_safe_split(text, cuts.back(), target);
    if (p > cuts.back()) cuts.push_back(p);
  }
  cuts.push_back(text.size());
  const size_t nchunks = cuts.size() - 1;
  if (nchunks < 2) return encode(text, mode);
  if (size_t(threads) > nchunks) threads = int(nchunks);

  struct alignas(64) ThreadOut {  // one per thread; aligned so no two share a cache line
    std::vector<int> ids;
  };
  struct Span {
    int thread = 0;
    size_t begin = 0, count = 0;
  };
  std::vector<ThreadOut> outs(static_cast<size_t>(threads));
  std::vector<Span> spans(nchunks);  // written once per chunk
  std::vector<std::exception_ptr> errors(nchunks);
  std::atomic<size_t> next{0};
  auto run = [&](int t) {
    std::vector<int>& buf = outs[size_t(t)].ids;
    buf.reserve(text.size() / 3 / size_t(threads) + 1024);  // ~tokens of this thread's share
    for (;;) {
      size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      size_t b = buf.size();
      try {
        encode_append(text.substr(cuts[c], cuts[c + 1] - cuts[c]), mode, buf, cuts[c]);
      } catch (...) {
        errors[c] = std::current_exception();
        buf.resize(b);
      }
      spans[c] = Span{t, b, buf.size() - b};
    }
  };
  std::vector<std::future<void>> pending;
  for (int t = 1; t < threads; ++t) pending.push_back(worker_pool().submit([&run, t] { run(t); }));
  run(0);  // the caller takes chunks too
  for (auto& f : pending) f.wait();
  // chunk order: the first error is the one encode() would report (cuts never split "<|endoftext|>")
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  size_t total = 0;
  for (const ThreadOut& o : outs) total += o.ids.size();
  std::vector<int> out;
  out.reserve(total);
  for (const Span& s : spans) {
    const int* p = outs[size_t(s.thread)].ids.data() + s.begin;
    out.insert(out.end(), p, p + s.count);
  }
  return out;
}

std::string_view Tokenizer::token_bytes(int id) const {
  if (id < 0 || id >= int(impl_->tokens.size()))
    fail("token id ", id, " is out of range (vocabulary size ", impl_->tokens.size(), ")");
  return impl_->tokens[size_t(id)];
}

std::string Tokenizer::decode_token(int id) const { return std::string(token_bytes(id)); }

std::string Tokenizer::decode(const int* ids, size_t n) const {
  std::string out;
  out.reserve(n * 4);
  for (size_t i = 0; i < n; ++i) out += token_bytes(ids[i]);
  return out;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const { return decode(ids.data(), ids.size()); }

// ---------------------------------------------------------------------------------------------
// Safe split points (see tokenizer.h)

namespace {
inline int ascii_class(unsigned char c) {  // 0 unusable, 1 letter, 2 digit, 3 other
  if (c >= 0x80 || c == ' ' || (c >= 9 && c <= 13) || c == '\'' || c == '|') return 0;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  if (c >= '0' && c <= '9') return 2;
  return 3;
}
// Unicode White_Space (what \s means in tiktoken's regex and in our pattern).
inline bool is_white_space(uint32_t c) {
  return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
inline size_t seq_len(unsigned char lead) {
  return lead < 0x80 ? 1 : (lead >= 0xC2 && lead <= 0xDF) ? 2 : (lead >= 0xE0 && lead <= 0xEF) ? 3
                                                         : (lead >= 0xF0 && lead <= 0xF4) ? 4 : 0;
}
// True when the valid character occupying exactly s[i, i+len) is White_Space; false for invalid bytes.
inline bool ws_char(const unsigned char* s, size_t i, size_t len) {
  if (seq_len(s[i]) != len || tok::valid_utf8_end(s, i, i + len) != i + len) return false;
  uint32_t c = len == 1 ? s[i] : len == 2 ? (s[i] & 0x1Fu) << 6 | (s[i + 1] & 0x3Fu)
                        : len == 3 ? (s[i] & 0x0Fu) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu)
                                   : (s[i] & 0x07u) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu);
  return is_white_space(c);
}
}  // namespace

bool is_safe_split(std::string_view text, size_t p) {
  if (p == 0 || p >= text.size()) return false;
  const unsigned char* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  if (s[p - 1] == '\n') {
    if (p < 2) return false;
    // the character (or invalid byte) ending at p-1 must not be white space
    for (size_t k = 1; k <= 4 && k <= p - 1; ++k) {
      size_t i = p - 1 - k;
      if (seq_len(s[i]) == k && tok::valid_utf8_end(s, i, p - 1) == p - 1) {
        if (ws_char(s, i, k)) return false;
        break;
      }
    }
    // and neither may the character (or invalid byte) starting at p
    size_t len = seq_len(s[p]);
    return !(len && p + len <= n && ws_char(s, p, len));
  }
  int a = ascii_class(s[p - 1]), b = ascii_class(s[p]);
  return a && b && a != b;
}

size_t find_safe_split(std::string_view text, size_t lo, size_t hi) {
  if (hi > text.size()) hi = text.size();
  // prefer a line boundary within the last 64 KiB before hi, else any safe point
  size_t window_lo = hi > lo + (1u << 16) ? hi - (1u << 16) : lo;
  for (size_t p = hi; p > window_lo; --p)
    if (text[p - 1] == '\n' && is_safe_split(text, p)) return p;
  for (size_t p = hi; p > lo; --p)
    if (is_safe_split(text, p)) return p;
  return 0;
}

}  // namespace llm
