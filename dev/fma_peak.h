// fma_peak.h — the fp32 FMA peak this machine gives right now, the ceiling for the GEMM benchmarks (bench_gemm,
// bench_cpu_step). A register-only loop: 12 independent chains of 16-wide FMAs (enough to cover the FMA latency
// on two ports), timed by thread CPU time so that time the thread spends off its core does not count.
#pragma once
#include <omp.h>
#include <time.h>

#include <algorithm>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dev {

inline double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// GFLOP/s of the calling thread's core (0 without AVX-512).
inline double fma_peak_gflops() {
#ifdef __AVX512F__
  __m512 c0 = _mm512_set1_ps(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0,
         c10 = c0, c11 = c0;
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  const long iters = 20000000;
  const double t0 = thread_cpu_s();
  for (long it = 0; it < iters; it++) {
    c0 = _mm512_fmadd_ps(c0, a, b); c1 = _mm512_fmadd_ps(c1, a, b); c2 = _mm512_fmadd_ps(c2, a, b);
    c3 = _mm512_fmadd_ps(c3, a, b); c4 = _mm512_fmadd_ps(c4, a, b); c5 = _mm512_fmadd_ps(c5, a, b);
    c6 = _mm512_fmadd_ps(c6, a, b); c7 = _mm512_fmadd_ps(c7, a, b); c8 = _mm512_fmadd_ps(c8, a, b);
    c9 = _mm512_fmadd_ps(c9, a, b); c10 = _mm512_fmadd_ps(c10, a, b); c11 = _mm512_fmadd_ps(c11, a, b);
    // keep the chains in registers and the loop un-collapsed
    __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7), "+v"(c8),
                     "+v"(c9), "+v"(c10), "+v"(c11));
  }
  const double t = thread_cpu_s() - t0;
  alignas(64) float lanes[16];  // the chains' sum, so that none of them is dead code
  _mm512_store_ps(lanes, c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
  volatile float sink = lanes[0];
  (void)sink;
  return iters * 12 * 32.0 / t / 1e9;
#else
  return 0.0;
#endif
}

// Sum over the OpenMP threads of each one's peak with all of them running the loop at once; best of `runs`.
inline double fma_peak_all_threads_gflops(int runs = 3) {
  double best = 0;
  for (int r = 0; r < runs; r++) {
    double sum = 0;
#pragma omp parallel reduction(+ : sum)
    sum += fma_peak_gflops();
    best = std::max(best, sum);
  }
  return best;
}

}  // namespace dev
