// bench_cpu_step.cpp — median wall time of one CPU training step (forward + zero_grad + backward + AdamW) of
// a randomly initialised GPT-2 (default 124M), like llm.c's train_gpt2.c step (without its dataloader).
//
//   usage: bench_cpu_step [--preset gpt2] [-b 4] [-t 64] [--steps 6] [--warmup 1]
// Threads: set OMP_NUM_THREADS (dev/bench_cpu_step.sh uses 2). Prints per-step times, the median, and a
// per-phase breakdown of the median step, then per op family the median over `steps` repetitions of that
// family's calls of one step, made here from outside with the model's shapes (dev/op_times.h: the model itself
// carries no timing code).
// Last, the arithmetic floor: the step's linear-layer matmuls (6 · B·T · weights of the linear layers, LM head
// included: forward, dx and dW) at the fp32 FMA peak that all threads get right now (dev/fma_peak.h), next to the
// measured matmul time and the measured time of everything else.
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "dev/fma_peak.h"
#include "dev/op_times.h"
#include "host/error.h"

namespace {
// Process CPU time (all threads): on a busy machine wall time mostly measures the neighbours, so the
// benchmark also reports CPU ms; with T threads and no contention, wall ≈ CPU / T.
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

int main(int argc, char** argv) {
  std::string preset = "gpt2";
  int B = 4, T = 64, steps = 6, warmup = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--preset") preset = argv[i + 1];
    else if (f == "-b") B = std::atoi(argv[i + 1]);
    else if (f == "-t") T = std::atoi(argv[i + 1]);
    else if (f == "--steps") steps = std::atoi(argv[i + 1]);
    else if (f == "--warmup") warmup = std::atoi(argv[i + 1]);
    else { std::fprintf(stderr, "unknown flag %s\n", f.c_str()); return 2; }
  }
  try {
    llm::GPT2Config cfg = llm::preset_config(preset);
    cfg.dropout = 0.0f;
    llm::GPT2Model model(cfg);
    model.init_gpt2(1337);
    llm::AdamW opt(cfg, llm::AdamWConfig{0.9f, 0.95f, 1e-8f, 0.0f, llm::DecayMode::kAll});
    std::vector<int> inp(B * T), tgt(B * T);
    uint64_t x = 88172645463325252ull;  // xorshift64 tokens
    for (int i = 0; i < B * T; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      inp[i] = (int)(x % cfg.vocab_size);
    }
    for (int i = 0; i < B * T; i++) tgt[i] = inp[(i + 1) % (B * T)];
    std::printf("preset %s  params %zu  B=%d T=%d threads=%d\n", preset.c_str(), model.num_params(), B, T,
                omp_get_max_threads());
    std::vector<double> total, fwd, zg, bwd, upd, cpu, norm_ms, adamw_ms;
    for (int s = 0; s < warmup + steps; s++) {
      const double c0 = cpu_ms();
      const double t0 = now_ms();
      const float loss = model.forward(inp.data(), tgt.data(), B, T, {true, 0});
      const double t1 = now_ms();
      model.zero_grad();
      const double t2 = now_ms();
      model.backward();
      const double t3 = now_ms();
      const double norm = llm::grad_norm(model);  // clipping fused into the update
      const double t3n = now_ms();
      opt.step(model, 1e-4f, s + 1, llm::clip_scale(norm, 1.0f));
      const double t4 = now_ms();
      const double c1 = cpu_ms();
      std::printf("step %d loss %.6f norm %.4f  %.1f ms (fwd %.1f zero %.1f bwd %.1f norm+adamw %.1f) cpu %.1f ms%s\n",
                  s, loss, norm, t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3, c1 - c0, s < warmup ? "  [warmup]" : "");
      if (s >= warmup) {
        total.push_back(t4 - t0); fwd.push_back(t1 - t0); zg.push_back(t2 - t1); bwd.push_back(t3 - t2);
        upd.push_back(t4 - t3);
        norm_ms.push_back(t3n - t3);
        adamw_ms.push_back(t4 - t3n);
        cpu.push_back(c1 - c0);
      }
    }
    auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
    std::printf("median ms/step %.1f  (fwd %.1f, zero_grad %.1f, bwd %.1f, norm+adamw %.1f)  tok/s %.0f  cpu ms/step %.1f\n",
                median(total), median(fwd), median(zg), median(bwd), median(upd), B * T / (median(total) / 1000.0),
                median(cpu));
    std::vector<std::vector<double>> op_ms(dev::kNumOpFamilies);  // [family][repetition]
    dev::OpTimes ops(model, B, T);
    for (int s = 0; s < steps; s++) {
      const std::array<double, dev::kNumOpFamilies> ms = ops.time_one_step();
      for (int k = 0; k < dev::kNumOpFamilies; k++) op_ms[k].push_back(ms[k]);
    }
    std::printf("per op family, median wall ms of one step's calls (all layers), timed from outside the model:\n");
    for (int k = 0; k < dev::kNumOpFamilies; k++)
      std::printf("  %-30s %8.1f\n", dev::op_family_name(k), median(op_ms[k]));
    std::printf("  %-30s %8.1f\n  %-30s %8.1f\n", "grad norm", median(norm_ms), "adamw", median(adamw_ms));
    // the floor: linear-layer matmul FLOPs at the FMA peak of all threads
    const double C = cfg.channels, linear_weights = cfg.num_layers * 12.0 * C * C + (double)cfg.padded_vocab_size * C;
    const double matmul_gflop = 6.0 * B * T * linear_weights / 1e9;
    const double peak = dev::fma_peak_all_threads_gflops();
    const double matmul_ms = median(op_ms[dev::kMatmulFwd]) + median(op_ms[dev::kMatmulBwd]);
    if (peak > 0)
      std::printf("floor: linear-layer matmuls %.1f GFLOP; FMA peak of %d threads now %.0f GFLOP/s -> %.0f ms at 100%% "
                  "of peak; measured %.0f ms (%.0f%% of peak); everything else %.0f ms\n",
                  matmul_gflop, omp_get_max_threads(), peak, matmul_gflop / peak * 1e3, matmul_ms,
                  100.0 * matmul_gflop / peak * 1e3 / matmul_ms, median(total) - matmul_ms);
  } catch (const llm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return llm::kExitBadInput;
  }
  return 0;
}
