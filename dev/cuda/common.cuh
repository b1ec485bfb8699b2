// dev/cuda/common.cuh — shared scaffolding of the llm.c-style microbenchmarks in dev/cuda/<op>.cu.
//
// Each benchmark: build random inputs, compute the CPU reference (ref:: from cpu/ops.h), run kernel version N
// (argv[1]), validate EVERY element against the reference, then time the kernel over several block sizes with
// the L2 cache flushed before each repeat, printing ms, GB/s (and TFLOP/s for compute kernels) and the fraction
// of a ceiling (measured device-to-device copy bandwidth for memory-bound kernels).
// On the CUDA-on-CPU layer (g++ build) events are no-ops and timing means nothing there: it validates only.
#pragma once
#include "kernels/common.cuh"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace dev {

#ifdef __CUDACC__
constexpr bool kTiming = true;
#else
constexpr bool kTiming = false;  // CUDA-on-CPU layer: validation only
#endif

// ---------------------------------------------------------------------------------------------------------
// Inputs and device buffers.

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) do x = dist(rng); while (std::fabs(x) < 1e-3f);
  return v;
}
inline std::vector<int> random_ints(size_t n, int hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, hi - 1);
  std::vector<int> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}
// Values rounded through storage type T (what the kernel sees), so the reference can use them.
template <class T> std::vector<float> round_through(std::vector<float> v) {
  for (auto& x : v) x = kern::to_float<T>(kern::from_float<T>(x));
  return v;
}

template <class T> T* to_device(const std::vector<float>& h) {
  std::vector<T> tmp(h.size());
  for (size_t i = 0; i < h.size(); i++) tmp[i] = kern::from_float<T>(h[i]);
  T* d = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), (h.size() ? h.size() : 1) * sizeof(T)));
  CUDA_CHECK(cudaMemcpy(d, tmp.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
inline int* ints_to_device(const std::vector<int>& h) {
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), (h.size() ? h.size() : 1) * sizeof(int)));
  CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(int), cudaMemcpyHostToDevice));
  return d;
}
template <class T> T* device_alloc(size_t n) {  // poisoned with 0xFF (NaN) so unwritten outputs show
  T* d = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), (n ? n : 1) * sizeof(T)));
  CUDA_CHECK(cudaMemset(d, 0xFF, n * sizeof(T)));
  return d;
}
template <class T> std::vector<float> from_device(const T* d, size_t n) {
  std::vector<T> tmp(n);
  CUDA_CHECK(cudaMemcpy(tmp.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> h(n);
  for (size_t i = 0; i < n; i++) h[i] = kern::to_float<T>(tmp[i]);
  return h;
}

// ---------------------------------------------------------------------------------------------------------
// Validation: |got - ref| <= atol + rtol·|ref| for every element (rtol 1e-5 fp32, 2·2^-8 bf16; atol = rtol-scale
// × term_scale, see tests/kernels/kernel_test_util.h for the reasoning). Prints the max error; exits 1 on failure.
template <class T>
void validate_result(const T* d_got, const std::vector<float>& ref, const char* name, double term_scale = 1.0) {
  const bool bf16 = std::is_same<T, __nv_bfloat16>::value;
  const double rtol = bf16 ? 2.0 / 256.0 : 1e-5, atol = (bf16 ? 1.0 / 256.0 : 1e-5) * term_scale;
  const std::vector<float> got = from_device(d_got, ref.size());
  size_t bad = 0;
  double max_abs = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    const double err = std::fabs((double)got[i] - ref[i]);
    if (!(err <= atol + rtol * std::fabs(ref[i]))) {
      if (bad < 5) std::printf("  %s mismatch at %zu: got %.8g ref %.8g\n", name, i, got[i], ref[i]);
      bad++;
    } else if (err > max_abs) {
      max_abs = err;
    }
  }
  std::printf("  validate %-12s %zu elements, max abs err %.3e, %s\n", name, ref.size(), max_abs,
              bad ? "FAILED" : "OK");
  if (bad) {
    std::printf("  %zu of %zu elements outside tolerance\n", bad, ref.size());
    std::exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Timing (GPU only).

// Average ms of f() over `repeats` runs, L2 flushed (a memset of an L2-sized buffer) before each run.
template <class F> float benchmark_kernel(int repeats, F&& f) {
  if (!kTiming) return 0.0f;
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const size_t flush_bytes = (size_t)(prop.l2CacheSize > 0 ? prop.l2CacheSize : (1 << 24)) * 2;
  void* flush = nullptr;
  CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  float total = 0.0f;
  f();  // warm-up (first launch, lazy module load)
  for (int r = 0; r < repeats; r++) {
    CUDA_CHECK(cudaMemset(flush, r & 0xFF, flush_bytes));
    CUDA_CHECK(cudaEventRecord(start));
    f();
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    total += ms;
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  CUDA_CHECK(cudaFree(flush));
  return total / repeats;
}

// Device-to-device copy bandwidth in GB/s (read + write bytes / time): the ceiling for memory-bound kernels.
inline double copy_bandwidth_gbs() {
  if (!kTiming) return 0.0;
  static double cached = 0.0;
  if (cached > 0) return cached;
  const size_t bytes = (size_t)1 << 29;  // 512 MiB each way
  void *a = nullptr, *b = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMemset(a, 1, bytes));
  const float ms = benchmark_kernel(10, [&] { CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); });
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  cached = 2.0 * bytes / (ms * 1e-3) / 1e9;
  return cached;
}

// One result line. bytes: bytes the kernel must move (read + write); flops: 0 for memory-bound kernels.
inline void print_timing(const char* what, int block_size, float ms, double bytes, double flops = 0.0,
                         double peak_tflops = 0.0) {
  if (!kTiming) return;
  const double gbs = bytes / (ms * 1e-3) / 1e9, ceiling = copy_bandwidth_gbs();
  std::printf("  %-24s block %4d | %8.4f ms | %7.1f GB/s (%5.1f%% of copy %.0f GB/s)", what, block_size, ms, gbs,
              100.0 * gbs / ceiling, ceiling);
  if (flops > 0) {
    const double tflops = flops / (ms * 1e-3) / 1e12;
    std::printf(" | %6.1f TFLOP/s", tflops);
    if (peak_tflops > 0) std::printf(" (%4.1f%% of %.0f)", 100.0 * tflops / peak_tflops, peak_tflops);
  }
  std::printf("\n");
}

// A lab's main: `lab [version] [fp32|bf16]`. argv[1] picks the kernel version, 1..versions (default `def`; any
// other value: usage, exit 2); the lab validates and times only that version. argv[2] picks the precision
// (default both, fp32 first). run(T{}, version) runs one precision (T = float or __nv_bfloat16) and returns 0 on
// success; the exit code is the OR of the runs.
template <class Run>
int lab_main(int argc, char** argv, int versions, int def, Run&& run) {
  const int version = argc > 1 ? std::atoi(argv[1]) : def;
  if (version < 1 || version > versions) {
    std::fprintf(stderr, "usage: %s [version 1..%d, default %d] [fp32|bf16]\n", argv[0], versions, def);
    return 2;
  }
  const auto want = [&](const char* name) { return argc <= 2 || std::strcmp(argv[2], name) == 0; };
  int rc = 0;
  if (want("fp32")) rc |= run(float{}, version);
  if (want("bf16")) rc |= run(__nv_bfloat16{}, version);
  return rc;
}

inline const int kBlockSizes[] = {64, 128, 256, 512, 1024};

// The usual benchmark body: for every block size, check(block) (poison outputs, launch, validate); then, on a
// GPU, time launch(block) for every block size. bytes/flops: what one launch must move/compute.
template <class Check, class Launch>
void sweep_block_sizes(const char* what, double bytes, Check&& check, Launch&& launch, double flops = 0.0,
                       double peak_tflops = 0.0, int repeats = 50) {
  for (int bs : kBlockSizes) check(bs);
  std::printf("  %s: all block sizes validated\n", what);
  if (!kTiming) return;
  for (int bs : kBlockSizes) {
    const float ms = benchmark_kernel(repeats, [&] { launch(bs); });
    print_timing(what, bs, ms, bytes, flops, peak_tflops);
  }
}

// Problem size: GPT-2 124M activations (B=8, T=1024, C=768) on a GPU, a small one on the CPU layer.
struct DevShape {
  int B, T, C;
};
inline DevShape dev_shape() { return kTiming ? DevShape{8, 1024, 768} : DevShape{2, 32, 96}; }

template <class T> const char* precision_name() { return std::is_same<T, float>::value ? "fp32" : "bf16"; }

}  // namespace dev
