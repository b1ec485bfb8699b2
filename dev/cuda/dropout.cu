// dev/cuda/dropout.cu — dropout forward microbenchmark (llm.c style).
//
// The design choice here is the RNG cost: Philox4x32-10 is ~20 integer multiplies per call and gives 4 words.
// Versions (argv[1]):
//   1  one element per thread, one Philox call per element (3 of its 4 words thrown away)
//   2  one 16-byte chunk per thread, one Philox call per 4 elements; the production kernel in kernels/dropout.cuh
// Both must give the reference's mask bit for bit. Precision (argv[2], optional): fp32 | bf16.
// CPU layer (cmake target dev_dropout): validation only. GPU: nvcc -O3 -std=c++17 -arch=sm_90 -I.
//   dev/cuda/dropout.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp -o dropout && ./dropout 2
#include "dev/cuda/common.cuh"
#include "kernels/dropout.cuh"
#include "cpu/ops.h"

template <class T>
__global__ void dropout_forward_kernel1(T* out, const T* inp, size_t n, llm::DropoutSpec d) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float scale = d.p <= 0.0f ? 1.0f : llm::dropout_scale(d);
  out[i] = llm::dropout_keep(d, i) ? kern::from_float<T>(kern::to_float(inp[i]) * scale) : kern::from_float<T>(0.0f);
}

template <class T, int VERSION>
void launch(T* out, const T* inp, size_t n, const llm::DropoutSpec& d, int block) {
  constexpr int P = kern::Packed128<T>::size;
  if (VERSION == 1)
    launch_kernel(dropout_forward_kernel1<T>, dim3(CEIL_DIV(n, (size_t)block)), dim3(block), 0, nullptr, out, inp, n, d);
  else
    launch_kernel(kern::dropout_forward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block * P)), dim3(block), 0, nullptr,
                  out, inp, n, d);
}

template <class T, int VERSION>
void run() {
  const dev::DevShape s = dev::dev_shape();
  const size_t n = (size_t)s.B * s.T * s.C;
  std::printf("v%d %s: n = %zu (B=%d T=%d C=%d), p = 0.1\n", VERSION, dev::precision_name<T>(), n, s.B, s.T, s.C);
  llm::DropoutSpec d;
  d.p = 0.1f;
  d.seed = llm::dropout_step_seed(1337, 5, 0);
  d.stream = llm::dropout_stream(2, llm::kDropResidAttn);
  const auto x = dev::round_through<T>(dev::random_floats(n, 1));
  std::vector<float> out_ref(n);
  ref::dropout_forward(out_ref.data(), x.data(), n, d);
  T* d_x = dev::to_device<T>(x);
  T* d_out = dev::device_alloc<T>(n);
  dev::sweep_block_sizes(
      "dropout_forward", 2.0 * n * sizeof(T),
      [&](int bs) {
        CUDA_CHECK(cudaMemset(d_out, 0xFF, n * sizeof(T)));
        launch<T, VERSION>(d_out, d_x, n, d, bs);
        dev::validate_result(d_out, out_ref, "dropout", 0.0);  // also checks the mask: kept values are non-zero
      },
      [&](int bs) { launch<T, VERSION>(d_out, d_x, n, d, bs); });
  CUDA_CHECK(cudaFree(d_x));
  CUDA_CHECK(cudaFree(d_out));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 2, 2, [](auto zero, int version) {
    using T = decltype(zero);
    if (version == 1) run<T, 1>();
    else run<T, 2>();
    return 0;
  });
}
