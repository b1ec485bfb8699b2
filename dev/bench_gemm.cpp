// bench_gemm.cpp — GFLOP/s of the GEMM behind every linear layer of GPT-2 124M (B·T = 256 rows), old kernel
// (dev/gemm_old.cpp) against the current one (cpu/gemm.cpp), measured in the same run.
//
//   usage: bench_gemm [--rows 256] [--impl old|new|both] [--min-ms 300] [--only qkv|attproj|fc|fcproj|lm_head]
// Threads: OMP_NUM_THREADS (dev/bench_gemm.sh runs 1 and 2). For each layer (C in, OC out) and each product:
//   fwd  out(BT,OC)  = x(BT,C) · Wᵀ          M=BT N=OC K=C
//   dx   dx(BT,C)   += dy(BT,OC) · W          M=BT N=C  K=OC
//   dw   dW(OC,C)   += dyᵀ(OC,BT) · x(BT,C)   M=OC N=C  K=BT
// Reported per product: wall GFLOP/s (median call), GFLOP per process CPU-second (median call; on a shared machine
// wall time mostly measures the neighbours, CPU time is what the code costs), and that per-core rate as a
// fraction of the FMA peak this core reaches right now (best of several runs of a register-only FMA loop).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "cpu/gemm.h"
#include "dev/fma_peak.h"
#include "dev/gemm_old.h"

namespace {

double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double wall_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

using GemmFn = void (*)(float*, size_t, ref::MatView, ref::MatView, int, int, int);

struct Layer { const char* name; int C, OC; };
struct Product {
  const char* name;
  int M, N, K;
  float* c; size_t ldc;
  ref::MatView a, b;
};
struct Result { double wall_gflops, cpu_gflops; };

// Median wall time and median process CPU time per call (CPU time is much less sensitive than wall time to
// other processes on a shared machine; the median drops both slow outliers and clock-accounting artefacts).
Result time_gemm(GemmFn fn, const Product& p, double min_s) {
  const double flops = 2.0 * p.M * p.N * p.K;
  fn(p.c, p.ldc, p.a, p.b, p.M, p.N, p.K);  // warm-up (buffers, page faults)
  std::vector<double> walls, cpus;
  double wall_total = 0;
  while (walls.size() < 3 || wall_total < min_s) {
    const double w0 = wall_s(), c0 = cpu_s();
    fn(p.c, p.ldc, p.a, p.b, p.M, p.N, p.K);
    const double w = wall_s() - w0;
    cpus.push_back(cpu_s() - c0);
    wall_total += w;
    walls.push_back(w);
  }
  std::sort(walls.begin(), walls.end());
  std::sort(cpus.begin(), cpus.end());
  return {flops / walls[walls.size() / 2] / 1e9, flops / cpus[cpus.size() / 2] / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  int BT = 256;
  std::string impl = "both", only;
  double min_ms = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--rows") BT = std::atoi(argv[i + 1]);
    else if (f == "--impl") impl = argv[i + 1];
    else if (f == "--min-ms") min_ms = std::atof(argv[i + 1]);
    else if (f == "--only") only = argv[i + 1];
    else { std::fprintf(stderr, "unknown flag %s\n", f.c_str()); return 2; }
  }
  const int threads = omp_get_max_threads();
  double peak = 0;
  for (int i = 0; i < 5; i++) peak = std::max(peak, dev::fma_peak_gflops());
  std::printf("rows %d  threads %d  per-core FMA peak now %.1f GFLOP/s (thread CPU time)\n", BT, threads, peak);
  std::printf("%-8s %-4s %6s %6s %6s | %-21s | %-21s | %s\n", "layer", "prod", "M", "N", "K",
              "old wall / cpu-rate", "new wall / cpu-rate", "new/old (cpu)  new %peak");
  const Layer layers[] = {{"qkv", 768, 2304}, {"attproj", 768, 768}, {"fc", 768, 3072}, {"fcproj", 3072, 768},
                          {"lm_head", 768, 50304}};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  double sum_flops = 0, sum_old = 0, sum_new = 0;  // for the weighted (time-based) averages
  for (const Layer& L : layers) {
    if (!only.empty() && only != L.name) continue;
    const int C = L.C, OC = L.OC;
    std::vector<float> x((size_t)BT * C), w((size_t)OC * C), dy((size_t)BT * OC);
    for (auto* v : {&x, &w, &dy})
      for (auto& e : *v) e = nd(rng);
    std::vector<float> out((size_t)BT * OC), dx((size_t)BT * C), dw((size_t)OC * C);
    const Product prods[] = {
        {"fwd", BT, OC, C, out.data(), (size_t)OC, {x.data(), (size_t)C, 1}, {w.data(), 1, (size_t)C}},
        {"dx", BT, C, OC, dx.data(), (size_t)C, {dy.data(), (size_t)OC, 1}, {w.data(), (size_t)C, 1}},
        {"dw", OC, C, BT, dw.data(), (size_t)C, {dy.data(), 1, (size_t)OC}, {x.data(), (size_t)C, 1}},
    };
    for (const Product& p : prods) {
      Result ro{0, 0}, rn{0, 0};
      if (impl != "new") ro = time_gemm(ref_old::gemm_accumulate, p, min_ms / 1e3);
      if (impl != "old") rn = time_gemm(ref::gemm_accumulate, p, min_ms / 1e3);
      // weight by use per training step: 12 transformer layers, one lm_head
      const double flops = 2.0 * p.M * p.N * p.K * (std::strcmp(L.name, "lm_head") == 0 ? 1 : 12);
      sum_flops += flops;
      if (ro.cpu_gflops > 0) sum_old += flops / ro.cpu_gflops;
      if (rn.cpu_gflops > 0) sum_new += flops / rn.cpu_gflops;
      std::printf("%-8s %-4s %6d %6d %6d | %8.1f / %8.1f    | %8.1f / %8.1f    | %5.2fx        %5.1f%%\n", L.name,
                  p.name, p.M, p.N, p.K, ro.wall_gflops, ro.cpu_gflops, rn.wall_gflops, rn.cpu_gflops,
                  ro.cpu_gflops > 0 ? rn.cpu_gflops / ro.cpu_gflops : 0.0, peak > 0 ? 100 * rn.cpu_gflops / peak : 0);
    }
  }
  // one training step's matmuls, at the rates measured above (CPU-seconds: the idle-machine wall time × threads)
  std::printf("one training step's matmuls (%.1f GFLOP):", sum_flops / 1e9);
  if (sum_old > 0) std::printf("  old %.2f CPU-s (%.1f GFLOP/CPU-s)", sum_old / 1e9, sum_flops / sum_old);
  if (sum_new > 0)
    std::printf("  new %.2f CPU-s (%.1f GFLOP/CPU-s, %.1f%% of peak)", sum_new / 1e9, sum_flops / sum_new,
                100 * sum_flops / sum_new / peak);
  if (sum_old > 0 && sum_new > 0) std::printf("  new/old %.2fx", sum_old / sum_new);
  std::printf("\n");
  return 0;
}
