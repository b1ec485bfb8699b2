// dev/cuda/encoder.cu — embedding microbenchmarks (llm.c style).
//
// Versions (argv[1]):
//   1  forward, one element per thread (VEC = 1)
//   2  forward, one 16-byte chunk per thread; production (kernels/encoder.cuh)
//   3  backward (production): dwpe by (t, chunk), dwte by host-planned token buckets — deterministic, no
//      atomics; the timing includes the host plan and its upload
// Precision (argv[2], optional): fp32 | bf16 (default: both). Vocabulary: GPT-2's padded 50304 on a GPU,
// 256 on the CPU layer. CPU layer (cmake target dev_encoder): validation only. GPU: nvcc -O3 -std=c++17
//   -arch=sm_90 -I. dev/cuda/encoder.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp -o encoder && ./encoder 2
#include "dev/cuda/common.cuh"
#include "kernels/encoder.cuh"
#include "cpu/ops.h"

template <class T, int VEC>
void launch_forward(T* out, const int* inp, const T* wte, const T* wpe, int B, int Tn, int C, int block) {
  const size_t n = (size_t)B * Tn * C;
  launch_kernel(kern::encoder_forward_kernel<T, VEC>, dim3(CEIL_DIV(n, (size_t)block * VEC)), dim3(block), 0, nullptr,
                out, inp, wte, wpe, B, Tn, C);
}

template <class T>
void run(int version) {
  const dev::DevShape s = dev::dev_shape();
  const int V = dev::kTiming ? 50304 : 256, B = s.B, Tn = s.T, C = s.C;
  const size_t n = (size_t)B * Tn * C;
  std::printf("v%d %s: B=%d T=%d C=%d V=%d\n", version, dev::precision_name<T>(), B, Tn, C, V);
  const auto tokens = dev::random_ints((size_t)B * Tn, V, 1);
  const auto wte = dev::round_through<T>(dev::random_floats((size_t)V * C, 2));
  const auto wpe = dev::round_through<T>(dev::random_floats((size_t)Tn * C, 3));
  int* d_tok = dev::ints_to_device(tokens);
  T *d_wte = dev::to_device<T>(wte), *d_wpe = dev::to_device<T>(wpe), *d_out = dev::device_alloc<T>(n);
  if (version == 1 || version == 2) {
    std::vector<float> out_ref(n);
    ref::encoder_forward(out_ref.data(), tokens.data(), wte.data(), wpe.data(), B, Tn, C);
    auto launch = [&](int bs) {
      if (version == 1) launch_forward<T, 1>(d_out, d_tok, d_wte, d_wpe, B, Tn, C, bs);
      else launch_forward<T, kern::Packed128<T>::size>(d_out, d_tok, d_wte, d_wpe, B, Tn, C, bs);
    };
    dev::sweep_block_sizes(
        "encoder_forward", 3.0 * n * sizeof(T) + 4.0 * B * Tn,
        [&](int bs) {
          CUDA_CHECK(cudaMemset(d_out, 0xFF, n * sizeof(T)));
          launch(bs);
          dev::validate_result(d_out, out_ref, "encoder_fwd", 0.0);
        },
        launch);
  } else {
    const auto dout = dev::round_through<T>(dev::random_floats(n, 4));
    std::vector<float> dwte_ref((size_t)V * C, 0.0f), dwpe_ref((size_t)Tn * C, 0.0f);
    ref::encoder_backward(dwte_ref.data(), dwpe_ref.data(), dout.data(), tokens.data(), B, Tn, C);
    T* d_dout = dev::to_device<T>(dout);
    T *d_dwte = dev::device_alloc<T>((size_t)V * C), *d_dwpe = dev::device_alloc<T>((size_t)Tn * C);
    int* d_scratch = dev::device_alloc<int>(kern::encoder_backward_scratch_ints(B, Tn));
    auto launch = [&](int bs) {
      kern::encoder_backward(d_dwte, d_dwpe, d_scratch, d_dout, tokens.data(), B, Tn, C, nullptr, bs);
    };
    dev::sweep_block_sizes(
        "encoder_backward", 2.0 * n * sizeof(T) + 2.0 * (size_t)Tn * C * sizeof(T),
        [&](int bs) {
          CUDA_CHECK(cudaMemset(d_dwte, 0, (size_t)V * C * sizeof(T)));
          CUDA_CHECK(cudaMemset(d_dwpe, 0, (size_t)Tn * C * sizeof(T)));
          launch(bs);
          dev::validate_result(d_dwte, dwte_ref, "dwte", 4.0);  // a token repeats a few times at most here
          dev::validate_result(d_dwpe, dwpe_ref, "dwpe", 1.0 * B);
        },
        launch);
    CUDA_CHECK(cudaFree(d_dout));
    CUDA_CHECK(cudaFree(d_dwte));
    CUDA_CHECK(cudaFree(d_dwpe));
    CUDA_CHECK(cudaFree(d_scratch));
  }
  CUDA_CHECK(cudaFree(d_tok));
  CUDA_CHECK(cudaFree(d_wte));
  CUDA_CHECK(cudaFree(d_wpe));
  CUDA_CHECK(cudaFree(d_out));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 3, 2, [](auto zero, int version) {
    using T = decltype(zero);
    run<T>(version);
    return 0;
  });
}
