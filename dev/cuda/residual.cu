// dev/cuda/residual.cu — residual add forward microbenchmark (llm.c style).
//
// Versions (argv[1]):
//   1  scalar: one element per thread (VEC = 1)
//   2  packed: one 16-byte chunk per thread; the production kernel in kernels/residual.cuh
// Precision (argv[2], optional): fp32 | bf16 (default: both).
// CPU layer (cmake target dev_residual): validation only. GPU: nvcc -O3 -std=c++17 -arch=sm_90 -I.
//   dev/cuda/residual.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp -o residual && ./residual 2
#include "dev/cuda/common.cuh"
#include "kernels/residual.cuh"
#include "cpu/ops.h"

template <class T, int VEC>
void launch(T* out, const T* a, const T* b, size_t n, int block) {
  launch_kernel(kern::residual_forward_kernel<T, VEC>, dim3(CEIL_DIV(n, (size_t)block * VEC)), dim3(block), 0,
                nullptr, out, a, b, n);
}

template <class T, int VEC>
void run(const char* label) {
  const dev::DevShape s = dev::dev_shape();
  const size_t n = (size_t)s.B * s.T * s.C;
  std::printf("%s %s: n = %zu (B=%d T=%d C=%d)\n", label, dev::precision_name<T>(), n, s.B, s.T, s.C);
  const auto a = dev::round_through<T>(dev::random_floats(n, 1)), b = dev::round_through<T>(dev::random_floats(n, 2));
  std::vector<float> out_ref(n);
  ref::residual_forward(out_ref.data(), a.data(), b.data(), n);
  T* d_a = dev::to_device<T>(a);
  T* d_b = dev::to_device<T>(b);
  T* d_out = dev::device_alloc<T>(n);
  dev::sweep_block_sizes(
      "residual_forward", 3.0 * n * sizeof(T),
      [&](int bs) {
        CUDA_CHECK(cudaMemset(d_out, 0xFF, n * sizeof(T)));
        launch<T, VEC>(d_out, d_a, d_b, n, bs);
        dev::validate_result(d_out, out_ref, "residual", 0.0);
      },
      [&](int bs) { launch<T, VEC>(d_out, d_a, d_b, n, bs); });
  CUDA_CHECK(cudaFree(d_a));
  CUDA_CHECK(cudaFree(d_b));
  CUDA_CHECK(cudaFree(d_out));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 2, 2, [](auto zero, int version) {
    using T = decltype(zero);
    if (version == 1) run<T, 1>("v1 scalar");
    else run<T, 16 / sizeof(T)>("v2 packed");  // 16 bytes per access: 4 fp32, 8 bf16
    return 0;
  });
}
