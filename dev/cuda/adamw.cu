// dev/cuda/adamw.cu — AdamW update microbenchmark (llm.c style).
//
// Versions (argv[1]):
//   1  production (kernels/adamw.cuh): grid-stride, one element per thread per iteration; fp32 mode updates the
//      fp32 params in place, bf16 mode updates fp32 master weights and writes bf16 params by stochastic rounding
// Size: GPT-2 124M's 124,475,904 parameters on a GPU, 100,003 on the CPU layer.
// Precision (argv[2], optional): fp32 | bf16. CPU layer (cmake target dev_adamw): validation only.
// GPU: nvcc -O3 -std=c++17 -arch=sm_90 -I. dev/cuda/adamw.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp -o adamw
#include "dev/cuda/common.cuh"
#include "kernels/adamw.cuh"
#include "cpu/ops.h"

template <class T>
void run() {
  const size_t n = dev::kTiming ? 124475904 : 100003;
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
  const int t = 2;
  std::printf("v1 %s: n = %zu\n", dev::precision_name<T>(), n);
  const auto p = dev::random_floats(n, 1), g = dev::round_through<T>(dev::random_floats(n, 2));
  const auto m = dev::random_floats(n, 3, -0.1f, 0.1f), v = dev::random_floats(n, 4, 1e-3f, 1e-2f);
  std::vector<float> p_ref = p, m_ref = m, v_ref = v;
  ref::adamw_update(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, lr, b1, b2, eps, wd, t);
  const bool bf16 = !std::is_same<T, float>::value;
  T *d_p = dev::to_device<T>(p), *d_g = dev::to_device<T>(g);
  float *d_m = dev::to_device<float>(m), *d_v = dev::to_device<float>(v);
  float* d_master = bf16 ? dev::to_device<float>(p) : nullptr;
  kern::adamw_update(d_p, d_master, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, t, /*seed=*/42, nullptr);
  dev::validate_result(d_m, m_ref, "m", 1.0);
  dev::validate_result(d_v, v_ref, "v", 1.0);
  if (bf16) {
    dev::validate_result(d_master, p_ref, "master", 1.0);
    // bf16 params within one bf16 ulp (stochastic rounding): 2^-7 relative
    const auto got = dev::from_device(d_p, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(std::fabs(got[i] - p_ref[i]) <= std::fabs(p_ref[i]) / 128.0f + 1e-6f);
    std::printf("  validate bf16 params  %zu elements within one bf16 ulp of the master: %s\n", n, bad ? "FAILED" : "OK");
    if (bad) std::exit(1);
  } else {
    dev::validate_result(d_p, p_ref, "params", 1.0);
  }
  // bytes: read grad (T), m, v, master|param; write m, v, master, param
  const double bytes = bf16 ? n * (2.0 * sizeof(T) + 6 * 4.0) : n * (2.0 * sizeof(T) + 4 * 4.0 + 0.0);
  auto launch = [&](int bs) {
    kern::adamw_update(d_p, d_master, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, t, 42, nullptr, 1.0f, bs);
  };
  if (dev::kTiming)
    for (int bs : dev::kBlockSizes) dev::print_timing("adamw", bs, dev::benchmark_kernel(20, [&] { launch(bs); }), bytes);
  for (void* ptr : {(void*)d_p, (void*)d_g, (void*)d_m, (void*)d_v, (void*)d_master})
    if (ptr) CUDA_CHECK(cudaFree(ptr));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 1, 1, [](auto zero, int /*version*/) {
    using T = decltype(zero);
    run<T>();
    return 0;
  });
}
