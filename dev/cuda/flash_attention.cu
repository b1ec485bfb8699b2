// dev/cuda/flash_attention.cu — tensor-core causal attention lab (GPT-2: qkv (B,T,3C) -> out (B,T,C), and back).
//
// Versions (argv[1]; argv[2] = fp32 | bf16, default both — the tensor-core kernel is bf16 only, fp32 is skipped):
//   1  kernels/attention.cuh, the portable kernels (one thread per query row, FFMA): the baseline to beat (≥ 8×)
//   2  kernels/flash_attention.cuh: FlashAttention-2 on mma.sync m16n8k16 / ldmatrix / cp.async; forward (64×64
//      tiles, online softmax, K/V double-buffered) and deterministic backward (D = dout·out; dq over key tiles,
//      dk/dv over query tiles, no atomics)
//   (cuDNN SDPA, the other speed reference, is version 3 of dev/cuda/attention.cu on the same shape.)
// Validation: out against ref::attention_forward, dq/dk/dv against ref::attention_backward, every element. The argued
// per-element bounds live in tests/kernels/test_flash_attention.cu; here a practical scalar bound: out
// atol = 2^-7·max|v| (probabilities are rounded to bf16 before P·V), gradients atol = 2^-6·max|reference gradient|
// (dS and W rounded to bf16, D from the bf16 output), rtol 2^-7.
// Timing (GPU): FLOPs counted as FlashAttention does for causal attention: forward 2 matmuls over the lower
// triangle = 4·B·NH·hs·T(T+1)/2, backward 2.5× forward.
// GPU shape: GPT-2 124M, B=8, T=1024, C=768, NH=12 (hs 64). CPU layer: B=1, T=70, C=128, NH=2 (a partial tile).
#include "kernels/attention.cuh"
#include "kernels/flash_attention.cuh"
#include "dev/cuda/common.cuh"
#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace {

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}
std::vector<float> part(const std::vector<float>& qkv, int B, int T, int C, int which) {
  std::vector<float> r((size_t)B * T * C);
  for (size_t bt = 0; bt < (size_t)B * T; bt++)
    for (int c = 0; c < C; c++) r[bt * C + c] = qkv[bt * 3 * C + (size_t)which * C + c];
  return r;
}
double peak_tflops() {
  if (!dev::kTiming) return 0.0;
  cudaDeviceProp p;
  CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  if (p.major == 9) return 989.0;  // H100/H200 SXM dense bf16
  if (p.major == 8 && p.minor == 0) return 312.0;
  return 0.0;
}

template <typename T>
int run(int version) {
  const bool gpu = dev::kTiming;
  if (!std::is_same<T, __nv_bfloat16>::value) {
    std::printf("flash_attention v%d fp32: the tensor-core path is bf16 only: skipped\n", version);
    return 0;
  }
  const int B = gpu ? 8 : 1, Tn = gpu ? 1024 : 70, C = gpu ? 768 : 128, NH = gpu ? 12 : 2, hs = C / NH;
  std::printf("flash_attention v%d bf16  B=%d T=%d C=%d NH=%d\n", version, B, Tn, C, NH);
  if (version == 2 && !kern::flash_attention_supported(C, NH, true)) {
    std::printf("  head size %d not supported by the flash kernels: skipped\n", hs);
    return 0;
  }
  const size_t nqkv = (size_t)B * Tn * 3 * C, nout = (size_t)B * Tn * C, nlse = (size_t)B * NH * Tn;
  const auto qkv = dev::round_through<T>(dev::random_floats(nqkv, 1, -2.0f, 2.0f));
  const auto dout = dev::round_through<T>(dev::random_floats(nout, 2));
  llm::DropoutSpec drop;  // timing without dropout (the tests cover dropout)
  std::vector<float> r_out(nout), r_att((size_t)B * NH * Tn * Tn), r_dqkv(nqkv, 0.0f);
  ref::attention_forward(r_out.data(), r_att.data(), qkv.data(), B, Tn, C, NH, drop);

  T *d_qkv = dev::to_device<T>(qkv), *d_out = dev::device_alloc<T>(nout), *d_dout = dev::to_device<T>(dout);
  T* d_dqkv = dev::device_alloc<T>(nqkv);
  float *d_lse = dev::device_alloc<float>(nlse), *d_scratch = dev::device_alloc<float>(nlse);
  const double fwd_flops = 4.0 * B * NH * hs * ((double)Tn * (Tn + 1) / 2), bwd_flops = 2.5 * fwd_flops;
  const double fwd_bytes = (double)(nqkv + nout) * sizeof(T), bwd_bytes = (double)(nqkv * 2 + nout * 2) * sizeof(T);

  auto forward = [&] {
    if (version == 1)
      kern::attention_forward<T>(d_out, d_lse, d_qkv, B, Tn, C, NH, drop, 0);
    else
      kern::flash_attention_forward<T>(d_out, d_lse, d_qkv, B, Tn, C, NH, drop, 0);
  };
  auto backward = [&] {
    if (version == 1)
      kern::attention_backward<T>(d_dqkv, d_scratch, d_dout, d_qkv, d_lse, B, Tn, C, NH, drop, 0);
    else
      kern::flash_attention_backward<T>(d_dqkv, d_scratch, d_dout, d_qkv, d_out, d_lse, B, Tn, C, NH, drop, 0);
  };
  forward();
  CUDA_CHECK(cudaDeviceSynchronize());
  dev::validate_result(d_out, r_out, "out", 2.0 * max_abs(part(qkv, B, Tn, C, 2)));
  ref::attention_backward(r_dqkv.data(), dout.data(), qkv.data(), r_att.data(), B, Tn, C, NH, drop);
  backward();
  CUDA_CHECK(cudaDeviceSynchronize());
  const auto got = dev::from_device(d_dqkv, nqkv);
  const char* names[3] = {"dq", "dk", "dv"};
  for (int which = 0; which < 3; which++) {
    const auto r = part(r_dqkv, B, Tn, C, which);
    T* tmp = dev::to_device<T>(part(got, B, Tn, C, which));  // validate_result reads from the device
    dev::validate_result((const T*)tmp, r, names[which], 4.0 * max_abs(r));
    cudaFree(tmp);
  }
  const int repeats = 10;
  const double peak = peak_tflops();
  const float ms_f = dev::benchmark_kernel(repeats, forward);
  dev::print_timing(version == 1 ? "attention fwd portable" : "attention fwd flash", version == 1 ? (hs > 64 ? 32 : 64) : 128,
                    ms_f, fwd_bytes, fwd_flops, peak);
  const float ms_b = dev::benchmark_kernel(repeats, backward);
  dev::print_timing(version == 1 ? "attention bwd portable" : "attention bwd flash", version == 1 ? (hs > 64 ? 32 : 64) : 128,
                    ms_b, bwd_bytes, bwd_flops, peak);
  if (dev::kTiming)
    std::printf("  fwd+bwd %.4f ms = %.1f TFLOP/s\n", ms_f + ms_b, (fwd_flops + bwd_flops) / ((ms_f + ms_b) * 1e-3) / 1e12);
  cudaFree(d_qkv);
  cudaFree(d_out);
  cudaFree(d_dout);
  cudaFree(d_dqkv);
  cudaFree(d_lse);
  cudaFree(d_scratch);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 2, 2, [](auto zero, int version) {
    using T = decltype(zero);
    return run<T>(version);
  });
}
