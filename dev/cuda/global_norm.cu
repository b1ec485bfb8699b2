// dev/cuda/global_norm.cu — global gradient norm microbenchmark (llm.c style).
//
// Versions (argv[1]):
//   1  production (kernels/global_norm.cuh): per-block partial sums + one ordered final block; deterministic
//   2  one pass, block sums combined with a float atomicAdd: NOT deterministic (the last bits depend on block
//      order) — here only to measure what determinism costs; never used by the trainer
// Size: GPT-2 124M's 124,475,904 gradients on a GPU, 300,007 on the CPU layer.
// Precision (argv[2], optional): fp32 | bf16. CPU layer (cmake target dev_global_norm): validation only.
// GPU: nvcc -O3 -std=c++17 -arch=sm_90 -I. dev/cuda/global_norm.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp
#include "dev/cuda/common.cuh"
#include "kernels/global_norm.cuh"
#include "cpu/ops.h"

template <class T>
__global__ void norm_squared_atomic_kernel(float* out, const T* x, size_t n) {
  float sum = 0.0f;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = kern::to_float(x[i]);
    sum += g * g;
  }
  sum = kern::block_sum(sum);
  if (threadIdx.x == 0) atomicAdd(out, sum);
}

template <class T>
void run(int version) {
  const size_t n = dev::kTiming ? 124475904 : 300007;
  std::printf("v%d %s: n = %zu\n", version, dev::precision_name<T>(), n);
  const auto g = dev::round_through<T>(dev::random_floats(n, 1));
  const std::vector<float> ref_sq = {(float)(ref::global_grad_norm(g.data(), n) * ref::global_grad_norm(g.data(), n))};
  const std::vector<float> ref_norm = {(float)ref::global_grad_norm(g.data(), n)};
  T* d_g = dev::to_device<T>(g);
  float* d_out = dev::device_alloc<float>(1);
  float* d_scratch = dev::device_alloc<float>(kern::global_norm_scratch_floats());
  auto launch = [&](int bs) {
    if (version == 1) {
      kern::global_norm(d_out, d_scratch, d_g, n, nullptr);
    } else {
      CUDA_CHECK(cudaMemsetAsync(d_out, 0, sizeof(float)));
      launch_kernel(norm_squared_atomic_kernel<T>, dim3(kern::global_norm_blocks(n)), dim3(bs), 0, nullptr, d_out,
                    (const T*)d_g, n);
    }
  };
  if (version == 1) {
    launch(0);
    dev::validate_result(d_out, ref_norm, "norm", 0.0);
  } else {
    for (int bs : dev::kBlockSizes) {
      launch(bs);
      dev::validate_result(d_out, ref_sq, "norm_sq", 0.0);
    }
  }
  if (dev::kTiming) {
    if (version == 1) dev::print_timing("global_norm", kern::kNormBlockSize, dev::benchmark_kernel(20, [&] { launch(0); }), n * sizeof(T));
    else for (int bs : dev::kBlockSizes) dev::print_timing("global_norm_atomic", bs, dev::benchmark_kernel(20, [&] { launch(bs); }), n * sizeof(T));
  }
  CUDA_CHECK(cudaFree(d_g));
  CUDA_CHECK(cudaFree(d_out));
  CUDA_CHECK(cudaFree(d_scratch));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 2, 1, [](auto zero, int version) {
    using T = decltype(zero);
    run<T>(version);
    return 0;
  });
}
