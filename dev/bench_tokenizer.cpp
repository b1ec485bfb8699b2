// bench_tokenizer — encode throughput of the C++ GPT-2 tokenizer (speed is measured only in dev/).
//
//   build/bench_tokenizer [--reps N] FILE...
// First line: what 2 threads can give on this machine at all, measured in the same run:
//   probe cores=<n> compute2=<x> lookup2=<x>
// compute2: speed-up of 2 threads over 1 on a register-only integer loop (same work per thread);
// lookup2:  the same for dependent random reads in a 4 MiB table (cache-bound, like the tokenizer's
//           vocabulary / pair / piece tables). ~2.0 = two free cores; ~1.0 = one core's worth.
// Then for each file one line:
//   <file> bytes=<B> tokens=<N> fnv=<hash> cold1=<MB/s> cold2=<MB/s> warm1=<MB/s> par2=<MB/s>
//          cpu1=<MB/s> cpu2=<MB/s> pair2=<MB/s>
// cold1: first encode() with a freshly loaded tokenizer (empty piece cache), one thread;
// cold2: first encode_parallel(…, 2) with another fresh tokenizer (every thread's cache empty);
//        both best of min(N, 5), each run with its own fresh tokenizer, interleaved;
// warm1 / par2: best of N encode() / encode_parallel(…, 2) runs, interleaved (so that load from other
//        processes hits both alike), all piece caches warm; outputs checked identical;
// cpu1 / cpu2: the same runs in bytes per second of process CPU time (best of N): equal values
//        mean 2 threads waste nothing, so par2/warm1 is then limited by free cores only;
// pair2: 2 x bytes / wall time of two whole-text encode() calls running at the same time on two
//        threads (each with its own warm cache), best of N, interleaved too: the throughput two
//        cores give to this very workload, so pair2/warm1 is the ceiling for par2/warm1.
// MB = 1e6 bytes. dev/bench_tokenizer.sh runs this next to tiktoken.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "host/error.h"
#include "host/token_shard.h"
#include "host/tokenizer.h"

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::string fnv64(const std::vector<int>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int t : ids)
    for (int k = 0; k < 4; ++k) h = (h ^ ((uint32_t(t) >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

// Probe kernels; the results go into `sink` so that the loops are not optimised away.
volatile uint64_t sink;
void compute_loop(size_t iters) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < iters; ++i) x = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ull + i;
  sink = x;
}
void lookup_loop(const std::vector<uint32_t>& table, size_t iters) {  // table: a random permutation
  uint32_t j = 0;
  for (size_t i = 0; i < iters; ++i) j = table[j];
  sink = j;
}
// Speed-up of 2 threads (each doing `fn`) over 1 thread doing `fn`, best of 5 each, interleaved.
template <class F>
double scaling2(F fn) {
  double t1 = 1e30, t2 = 1e30;
  for (int r = 0; r < 5; ++r) {
    double t0 = now();
    fn();
    t1 = std::min(t1, now() - t0);
    t0 = now();
    std::thread other(fn);
    fn();
    other.join();
    t2 = std::min(t2, now() - t0);
  }
  return 2 * t1 / t2;
}
// A persistent second thread (its piece cache stays warm) that runs `job` each time it is kicked.
class Helper {
 public:
  explicit Helper(std::function<void()> job) : job_(std::move(job)), thread_([this] { loop(); }) {}
  ~Helper() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void kick() {
    std::lock_guard<std::mutex> lk(m_);
    ++requested_;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lk(m_);
    cv_.wait(lk, [this] { return finished_ == requested_; });
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_.wait(lk, [this] { return quit_ || finished_ < requested_; });
      if (quit_) return;
      lk.unlock();
      job_();
      lk.lock();
      ++finished_;
      cv_.notify_all();
    }
  }
  std::function<void()> job_;
  std::mutex m_;
  std::condition_variable cv_;
  long requested_ = 0, finished_ = 0;
  bool quit_ = false;
  std::thread thread_;  // last: starts after the other members exist
};
}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else files.push_back(argv[i]);
  }
  if (files.empty() || reps < 1) {
    std::fprintf(stderr, "usage: bench_tokenizer [--reps N>=1] FILE...\n");
    return 2;
  }
  try {
    {
      std::vector<uint32_t> table(1u << 20);  // 4 MiB: one random cycle through all entries
      std::vector<uint32_t> order(table.size());
      for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
      uint64_t rng = 1;
      for (size_t i = order.size() - 1; i > 0; --i) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        std::swap(order[i], order[(rng >> 33) % (i + 1)]);
      }
      for (size_t i = 0; i < order.size(); ++i) table[order[i]] = order[(i + 1) % order.size()];
      double c2 = scaling2([] { compute_loop(20'000'000); });
      double l2 = scaling2([&table] { lookup_loop(table, 2'000'000); });
      std::printf("probe cores=%u compute2=%.2f lookup2=%.2f\n", std::thread::hardware_concurrency(), c2, l2);
    }
    for (const std::string& f : files) {
      std::string text = llm::read_file_bytes(f);
      const auto mode = llm::SpecialMode::kAsText;  // like tiktoken's encode_ordinary
      // cold runs: a freshly loaded tokenizer for each (a new instance starts with empty per-thread
      // caches), 1T and 2T interleaved, best of min(N, 5); `tok` (the last 2T one) is kept
      std::vector<int> ids, p;
      double cold1 = 1e30, cold2 = 1e30, t0;
      llm::Tokenizer tok = llm::Tokenizer::from_default();
      for (int r = 0; r < std::min(reps, 5); ++r) {
        llm::Tokenizer fresh = llm::Tokenizer::from_default();
        t0 = now();
        std::vector<int> again = fresh.encode(text, mode);
        cold1 = std::min(cold1, now() - t0);
        if (r == 0) ids = again;
        if (again != ids) llm::fail("encode is not deterministic");
        tok = llm::Tokenizer::from_default();
        t0 = now();
        p = tok.encode_parallel(text, mode, 2);
        cold2 = std::min(cold2, now() - t0);
        if (p != ids) llm::fail("parallel encode differs from serial");
      }
      // warm runs, interleaved, with `tok` (the first encode() fills the rest of this thread's cache)
      double warm = 1e30, par = 1e30, cpu1 = 1e30, cpu2 = 1e30, pair = 1e30;
      std::vector<int> helper_ids;
      Helper helper([&] { helper_ids = tok.encode(text, mode); });
      for (int r = 0; r < reps + 1; ++r) {
        double c0 = cpu_now();
        t0 = now();
        std::vector<int> again = tok.encode(text, mode);
        double w = now() - t0, c = cpu_now() - c0;
        if (again != ids) llm::fail("encode is not deterministic");
        c0 = cpu_now();
        t0 = now();
        p = tok.encode_parallel(text, mode, 2);
        double w2 = now() - t0, c2 = cpu_now() - c0;
        if (p != ids) llm::fail("parallel encode differs from serial");
        t0 = now();
        helper.kick();
        again = tok.encode(text, mode);
        helper.wait();
        double w3 = now() - t0;
        if (again != ids || helper_ids != ids) llm::fail("encode is not deterministic");
        if (r == 0) continue;  // warm-up of the caches for the whole text
        warm = std::min(warm, w), cpu1 = std::min(cpu1, c);
        par = std::min(par, w2), cpu2 = std::min(cpu2, c2);
        pair = std::min(pair, w3);
      }
      double mb = double(text.size()) / 1e6;
      std::printf("%s bytes=%zu tokens=%zu fnv=%s cold1=%.2f cold2=%.2f warm1=%.2f par2=%.2f cpu1=%.2f cpu2=%.2f "
                  "pair2=%.2f\n",
                  f.c_str(), text.size(), ids.size(), fnv64(ids).c_str(), mb / cold1, mb / cold2, mb / warm,
                  mb / par, mb / cpu1, mb / cpu2, 2 * mb / pair);
    }
  } catch (const llm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
