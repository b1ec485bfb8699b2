// bench_membw.cpp — STREAM-like memory bandwidth of this machine, the ceiling for CPU decoding (bench_decode).
//
//   ./build/bench_membw [MiB per array=256] [reps=5]      (OMP_NUM_THREADS picks the threads)
// Why: a decode step reads every weight once (fp32 GPT-2 124M: ~500 MB), so tokens/s <= bandwidth / bytes per
// token. Two kernels over arrays far larger than the caches, best of `reps`:
//   read : s += a[i]             (what a matrix-vector product does to its weights: stream, no stores)
//   triad: a[i] = b[i] + q·c[i]  (STREAM's triad; counted as 3 arrays moved, as STREAM does — the write-allocate
//                                 read of a makes the real traffic 4 arrays)
// Prints GB/s (1e9 bytes) for each, with 1 thread and with all OpenMP threads, by wall time and by process CPU
// time (bytes / (CPU seconds / threads)): the machine is shared, and CPU time excludes the waits for a core.
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Process CPU seconds (all threads): on a shared, loaded machine wall time includes waiting for a core; bytes per
// CPU-second × threads is what the threads achieve while they actually run.
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Rate {
  double wall_gbs, cpu_gbs;  // best wall-clock rate; rate per CPU-second × threads
};

template <class F> Rate measure(double bytes, int threads, int reps, F&& body) {
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < reps; r++) {
    const double t0 = now(), c0 = cpu_now();
    body();
    best = std::min(best, now() - t0);
    best_cpu = std::min(best_cpu, (cpu_now() - c0) / threads);
  }
  return {bytes / best / 1e9, bytes / best_cpu / 1e9};
}

Rate read_gbs(const float* a, size_t n, int threads, int reps, double* sink) {
  return measure(n * sizeof(float), threads, reps, [&] {
    double s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    {
      float acc[32] = {};  // independent partial sums: the adds vectorise and do not wait on each other
#pragma omp for schedule(static)
      for (size_t i = 0; i < n / 32; i++)
        for (int j = 0; j < 32; j++) acc[j] += a[i * 32 + j];
      for (float x : acc) s += x;
    }
    *sink += s;
  });
}

Rate triad_gbs(float* a, const float* b, const float* c, size_t n, int threads, int reps) {
  return measure(3.0 * n * sizeof(float), threads, reps, [&] {
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
  });
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const size_t n = mib * (1u << 20) / sizeof(float);
  std::vector<float> a(n), b(n), c(n);
  const int maxt = omp_get_max_threads();
#pragma omp parallel for num_threads(maxt) schedule(static)  // first touch by the threads that will read
  for (size_t i = 0; i < n; i++) {
    a[i] = 1.0f;
    b[i] = 2.0f;
    c[i] = 0.5f;
  }
  double sink = 0;
  std::printf("bench_membw: 3 arrays of %zu MiB, best of %d\n", mib, reps);
  for (int t : {1, maxt}) {
    const Rate r = read_gbs(b.data(), n, t, reps, &sink);
    const Rate tr = triad_gbs(a.data(), b.data(), c.data(), n, t, reps);
    std::printf("  %d thread%s: read %.1f GB/s (%.1f per CPU time) | triad %.1f GB/s (%.1f per CPU time)\n", t,
                t > 1 ? "s" : " ", r.wall_gbs, r.cpu_gbs, tr.wall_gbs, tr.cpu_gbs);
    if (t == maxt) break;
  }
  return sink == 0.12345 ? 1 : 0;  // keeps the reads alive
}
