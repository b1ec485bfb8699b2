// bench_decode.cpp — CPU decode speed of GPT-2 124M (random init), per weight format, with and without KV cache.
//
//   OMP_NUM_THREADS=2 ./build/bench_decode [new_tokens=64] [prompt_tokens=4] [preset=gpt2] [formats=fp32,bf16,int8,q4]
//                                          [no_cache_tokens=8]
// (OMP_WAIT_POLICY defaults to passive here, see main.)
// Greedy, batch 1: prefill the prompt, then time the decode steps (the first new token comes from the prefill).
// For each format: the cached path over new_tokens, the no-cache path (whole context re-run per token, same code)
// over no_cache_tokens (0 = skip), and the fp32 reference (UncachedGPT2) for fp32. Each line gives tok/s by wall
// clock and by process CPU time (steps / (CPU seconds / threads): what the threads do while they hold a core —
// the machine is shared, so wall time also counts waiting for one), and the weight bytes a cached step streams
// with the bandwidth that implies (compare dev/bench_membw). Checks that each path's tokens agree with the
// cached path of the same format over the common length (fp32 also with the reference).
#include <omp.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "cpu/gpt2_infer.h"
#include "cpu/gpt2_model.h"

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Run {
  std::vector<int> tokens;
  double wall = 0, cpu = 0;
  int steps = 0;
};

Run run(llm::LogitsModel& model, const std::vector<int>& prompt, int n) {
  llm::GenerateOptions opt;
  opt.max_new_tokens = n;
  opt.sampling.temperature = 0.0f;
  llm::GenerateStats st;
  double c0 = 0;
  Run r;
  // CPU time of the decode part only: start the clock at the first streamed token (right after the prefill)
  r.tokens = llm::generate_tokens(model, prompt, opt, [&](int) { if (c0 == 0) c0 = cpu_seconds(); }, &st);
  r.cpu = cpu_seconds() - c0;
  r.wall = st.decode_seconds;
  r.steps = st.new_tokens - 1;
  return r;
}

void report(const char* what, const Run& r, int threads, double bytes) {
  const double wall_tps = r.steps / r.wall, cpu_tps = r.steps / (r.cpu / threads);
  std::printf("  %-22s %6.2f tok/s wall | %6.2f tok/s CPU-time | %d steps, %.2f s wall, %.2f s CPU", what, wall_tps,
              cpu_tps, r.steps, r.wall, r.cpu);
  if (bytes > 0) std::printf(" | %.0f MB/token -> %.1f GB/s wall, %.1f GB/s CPU-time", bytes / 1e6,
                             bytes * wall_tps / 1e9, bytes * cpu_tps / 1e9);
  std::printf("\n");
  std::fflush(stdout);
}

bool same_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  const size_t n = std::min(a.size(), b.size());
  return std::equal(a.begin(), a.begin() + n, b.begin());
}

}  // namespace

int main(int argc, char** argv) {
  // Threads sleep at OpenMP barriers unless told otherwise: on a shared machine a spinning thread whose partner
  // lost its core burns the step (measured 2 threads, fp32: 3.6 tok/s spinning vs 17 tok/s passive). libgomp
  // reads the variable at load time, so set it and re-run this binary once.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  const int new_tokens = argc > 1 ? std::atoi(argv[1]) : 64;
  const int prompt_len = argc > 2 ? std::atoi(argv[2]) : 4;
  const std::string preset = argc > 3 ? argv[3] : "gpt2";
  const std::string formats = argc > 4 ? argv[4] : "fp32,bf16,int8,q4";
  const int nc_tokens = argc > 5 ? std::atoi(argv[5]) : 8;
  llm::GPT2Config c = llm::preset_config(preset);
  c.dropout = 0.0f;
  llm::GPT2Model init(c);
  init.init_gpt2(1337);
  std::vector<float> params(init.params(), init.params() + init.num_params());
  std::vector<int> prompt;
  for (int i = 0; i < prompt_len; i++) prompt.push_back((i * 7919 + 13) % c.vocab_size);
  const int threads = omp_get_max_threads();
  std::printf("bench_decode: %s (%zu params), %d threads (OMP_WAIT_POLICY=%s), prompt %d, %d new tokens (%d without "
              "cache), greedy\n", preset.c_str(), params.size(), threads, std::getenv("OMP_WAIT_POLICY"), prompt_len,
              new_tokens, nc_tokens);
  bool ok = true;
  std::stringstream fs(formats);
  for (std::string f; std::getline(fs, f, ',');) {
    const llm::WeightFormat fmt = llm::parse_weight_format(f);
    std::printf("%s weights:\n", f.c_str());
    llm::KVCacheGPT2 cached(c, std::vector<float>(params), fmt, true);
    const Run a = run(cached, prompt, new_tokens);
    report("kv cache", a, threads, (double)cached.weight_bytes_per_token());
    if (nc_tokens > 0) {
      llm::KVCacheGPT2 nocache(c, std::vector<float>(params), fmt, false);
      const Run b = run(nocache, prompt, nc_tokens);
      report("no cache", b, threads, 0);
      if (!same_prefix(a.tokens, b.tokens)) ok = false, std::printf("  tokens differ: cache vs no cache\n");
      if (fmt == llm::WeightFormat::kFp32) {
        llm::UncachedGPT2 ref(c, params);
        const Run r = run(ref, prompt, nc_tokens);
        report("no cache (reference)", r, threads, 0);
        if (!same_prefix(a.tokens, r.tokens)) ok = false, std::printf("  tokens differ: cache vs reference\n");
      }
    }
  }
  std::printf("  tokens identical within each format: %s\n", ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
