// dev/cuda/gelu.cu — GELU forward/backward microbenchmark (llm.c style).
//
// Versions (argv[1]):
//   1  scalar: one element per thread (VEC = 1)
//   2  packed: one 16-byte chunk per thread (VEC = 16/sizeof(floatX)); the production kernel in kernels/gelu.cuh
// Precision (argv[2], optional): fp32 | bf16 (default: both).
// CPU layer (cmake target dev_gelu): validates every version/block size, no timing.
// GPU: nvcc -O3 -std=c++17 -arch=sm_90 -I. dev/cuda/gelu.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp -o gelu
//      ./gelu 2
#include "dev/cuda/common.cuh"
#include "kernels/gelu.cuh"
#include "cpu/ops.h"

template <class T, int VEC>
void launch_forward(T* out, const T* inp, size_t n, int block) {
  launch_kernel(kern::gelu_forward_kernel<T, VEC>, dim3(CEIL_DIV(n, (size_t)block * VEC)), dim3(block), 0, nullptr,
                out, inp, n);
}
template <class T, int VEC>
void launch_backward(T* dinp, const T* inp, const T* dout, size_t n, int block) {
  launch_kernel(kern::gelu_backward_kernel<T, VEC>, dim3(CEIL_DIV(n, (size_t)block * VEC)), dim3(block), 0, nullptr,
                dinp, inp, dout, n, false);
}

template <class T, int VEC>
void run(const char* label) {
  const dev::DevShape s = dev::dev_shape();
  const size_t n = (size_t)s.B * s.T * 4 * s.C;
  std::printf("%s %s: n = %zu (B=%d T=%d 4C=%d)\n", label, dev::precision_name<T>(), n, s.B, s.T, 4 * s.C);
  const auto x = dev::round_through<T>(dev::random_floats(n, 1, -4.0f, 4.0f));
  const auto dout = dev::round_through<T>(dev::random_floats(n, 2));
  std::vector<float> y_ref(n), dx_ref(n, 0.0f);
  ref::gelu_forward(y_ref.data(), x.data(), n);
  ref::gelu_backward(dx_ref.data(), x.data(), dout.data(), n);
  T* d_x = dev::to_device<T>(x);
  T* d_dout = dev::to_device<T>(dout);
  T* d_y = dev::device_alloc<T>(n);
  T* d_dx = dev::device_alloc<T>(n);
  dev::sweep_block_sizes(
      "gelu_forward", 2.0 * n * sizeof(T),
      [&](int bs) {
        CUDA_CHECK(cudaMemset(d_y, 0xFF, n * sizeof(T)));
        launch_forward<T, VEC>(d_y, d_x, n, bs);
        dev::validate_result(d_y, y_ref, "gelu_fwd", 0.1);
      },
      [&](int bs) { launch_forward<T, VEC>(d_y, d_x, n, bs); });
  dev::sweep_block_sizes(
      "gelu_backward", 3.0 * n * sizeof(T),
      [&](int bs) {
        CUDA_CHECK(cudaMemset(d_dx, 0xFF, n * sizeof(T)));
        launch_backward<T, VEC>(d_dx, d_x, d_dout, n, bs);
        dev::validate_result(d_dx, dx_ref, "gelu_bwd", 1.0);
      },
      [&](int bs) { launch_backward<T, VEC>(d_dx, d_x, d_dout, n, bs); });
  CUDA_CHECK(cudaFree(d_x));
  CUDA_CHECK(cudaFree(d_dout));
  CUDA_CHECK(cudaFree(d_y));
  CUDA_CHECK(cudaFree(d_dx));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 2, 2, [](auto zero, int version) {
    using T = decltype(zero);
    if (version == 1) run<T, 1>("v1 scalar");
    else run<T, 16 / sizeof(T)>("v2 packed");  // 16 bytes per access: 4 fp32, 8 bf16
    return 0;
  });
}
