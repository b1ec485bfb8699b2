// dev/cuda/matmul.cu — matmul lab: out(N,OC) = inp(N,C)·weight(OC,C)ᵀ + bias, the nn.Linear of GPT-2.
//
// Versions (argv[1]; argv[2] = fp32 | bf16, default both):
//   1  naive: one thread per output, both operands read from global memory
//   2  shared-memory tiled: TILE×TILE tiles (TILE 16 or 32 = the "block size"), one output per thread
//   3  register-tiled own kernel of kernels/matmul.cuh (64×64 tile, 4×4 outputs per thread) — fwd and bwd
//   4  cuBLASLt through kernels/matmul.cuh (GPU build only; skipped on the CPU layer)         — fwd and bwd
// Every version is validated element by element against ref::matmul_forward (and ref::matmul_backward for 3, 4),
// then timed with the L2 flushed (GPU only). GPU shape: GPT-2 124M's MLP up-projection at B=8, T=1024
// (N=8192, C=768, OC=3072). CPU layer: a small shape with edges that are not multiples of any tile.
#include "kernels/matmul.cuh"
#include "dev/cuda/common.cuh"
#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

// ---- version 1: naive -------------------------------------------------------------------------------------
template <typename floatX>
__global__ void matmul_naive_kernel(floatX* out, const floatX* inp, const floatX* w, const floatX* bias, int N, int C,
                                    int OC) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)N * OC) return;
  const int n = (int)(idx / OC), o = (int)(idx % OC);
  float acc = 0.0f;
  for (int c = 0; c < C; c++) acc += kern::to_float(inp[(size_t)n * C + c]) * kern::to_float(w[(size_t)o * C + c]);
  if (bias) acc += kern::to_float(bias[o]);
  out[idx] = kern::from_float<floatX>(acc);
}

// ---- version 2: shared-memory tiles, one output per thread ------------------------------------------------
template <int TILE, typename floatX>
__global__ void matmul_smem_kernel(floatX* out, const floatX* inp, const floatX* w, const floatX* bias, int N, int C,
                                   int OC) {
  __shared__ float As[TILE][TILE + 1], Ws[TILE][TILE + 1];  // As[n][c], Ws[o][c]; +1 avoids bank conflicts
  const int tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;
  const int n = blockIdx.y * TILE + ty, o = blockIdx.x * TILE + tx;
  float acc = 0.0f;
  for (int c0 = 0; c0 < C; c0 += TILE) {
    const int na = blockIdx.y * TILE + ty, ow = blockIdx.x * TILE + ty;  // rows this thread loads
    As[ty][tx] = (na < N && c0 + tx < C) ? kern::to_float(inp[(size_t)na * C + c0 + tx]) : 0.0f;
    Ws[ty][tx] = (ow < OC && c0 + tx < C) ? kern::to_float(w[(size_t)ow * C + c0 + tx]) : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; k++) acc += As[ty][k] * Ws[tx][k];
    __syncthreads();
  }
  if (n < N && o < OC) {
    if (bias) acc += kern::to_float(bias[o]);
    out[(size_t)n * OC + o] = kern::from_float<floatX>(acc);
  }
}

// ---- harness ----------------------------------------------------------------------------------------------
namespace {

// max_n Σ_c |a[n,c]| (bound on the magnitude of the terms a dot product over a row adds)
double max_row_abs_sum(const std::vector<float>& a, int rows, int cols, bool transpose = false) {
  double m = 0;
  for (int r = 0; r < rows; r++) {
    double s = 0;
    for (int c = 0; c < cols; c++) s += std::fabs(transpose ? a[(size_t)c * rows + r] : a[(size_t)r * cols + c]);
    m = std::max(m, s);
  }
  return m;
}
double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

// Dense tensor-core/FMA peaks of the GPU generations we expect (TFLOP/s), for the "% of peak" column.
double peak_tflops(bool bf16) {
  if (!dev::kTiming) return 0.0;
  cudaDeviceProp p;
  CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  if (p.major == 9) return bf16 ? 989.0 : 67.0;  // H100/H200 SXM: bf16 tensor, fp32 FMA
  if (p.major == 8 && p.minor == 0) return bf16 ? 312.0 : 19.5;  // A100
  return 0.0;
}

template <typename T>
int run(int version) {
  const bool gpu = dev::kTiming;
  const int N = gpu ? 8192 : 70, C = gpu ? 768 : 96, OC = gpu ? 3072 : 130;
  const bool bf16 = std::is_same<T, __nv_bfloat16>::value;
  std::printf("matmul v%d %s  N=%d C=%d OC=%d\n", version, bf16 ? "bf16" : "fp32", N, C, OC);
  if (version == 4 && !kern::matmul_vendor()) {
    std::printf("  v4 (cuBLASLt) is not compiled into this build (CPU layer): skipped\n");
    return 0;
  }
  const auto inp = dev::round_through<T>(dev::random_floats((size_t)N * C, 1));
  const auto w = dev::round_through<T>(dev::random_floats((size_t)OC * C, 2, -0.5f, 0.5f));
  const auto bias = dev::round_through<T>(dev::random_floats(OC, 3));
  std::vector<float> ref_out((size_t)N * OC);
  ref::matmul_forward(ref_out.data(), inp.data(), w.data(), bias.data(), N, C, OC);
  const double S_out = max_row_abs_sum(inp, N, C) * max_abs(w) + max_abs(bias);

  T *d_inp = dev::to_device<T>(inp), *d_w = dev::to_device<T>(w), *d_bias = dev::to_device<T>(bias);
  T* d_out = dev::device_alloc<T>((size_t)N * OC);
  const double flops = 2.0 * N * C * OC, bytes = ((double)N * C + (double)OC * C + (double)N * OC) * sizeof(T);
  const double peak = peak_tflops(bf16);
  // v4: Auto (cuBLASLt, a decline counted and checked below) rather than CublasLt (a decline would throw)
  const auto be = version == 4 ? kern::MatmulBackend::Auto : kern::MatmulBackend::Own;

  auto forward = [&](int block) {
    if (version == 1) {
      const size_t total = (size_t)N * OC;
      launch_kernel(matmul_naive_kernel<T>, dim3((unsigned)((total + block - 1) / block)), dim3(block), 0, 0, d_out,
                    (const T*)d_inp, (const T*)d_w, (const T*)d_bias, N, C, OC);
    } else if (version == 2) {
      if (block == 256)
        launch_kernel(matmul_smem_kernel<16, T>, dim3((OC + 15) / 16, (N + 15) / 16), dim3(256), 0, 0, d_out,
                      (const T*)d_inp, (const T*)d_w, (const T*)d_bias, N, C, OC);
      else
        launch_kernel(matmul_smem_kernel<32, T>, dim3((OC + 31) / 32, (N + 31) / 32), dim3(1024), 0, 0, d_out,
                      (const T*)d_inp, (const T*)d_w, (const T*)d_bias, N, C, OC);
    } else {
      kern::matmul_forward<T>(d_out, nullptr, d_inp, d_w, d_bias, N, C, OC, 0, be);
    }
  };
  std::vector<int> blocks;
  if (version == 1) blocks = {64, 128, 256, 512, 1024};
  if (version == 2) blocks = {256, 1024};
  if (version >= 3) blocks = {kern::kMmThreads};

  // validate every configuration, then time them
  for (int block : blocks) {
    CUDA_CHECK(cudaMemset(d_out, 0xFF, (size_t)N * OC * sizeof(T)));
    forward(block);
    CUDA_CHECK(cudaDeviceSynchronize());
    dev::validate_result(d_out, ref_out, "out", S_out);
  }
  if (version == 4 && kern::matmul_vendor_declines() > 0) {
    std::printf("  cuBLASLt declined this problem: the own kernel ran instead; not reporting v4 timings\n");
    return 1;
  }
  const int repeats = version == 1 ? 3 : 10;
  for (int block : blocks) {
    const float ms = dev::benchmark_kernel(repeats, [&] { forward(block); });
    dev::print_timing(version == 4 ? "matmul fwd cublaslt" : "matmul fwd", block, ms, bytes, flops, peak);
  }

  if (version >= 3) {  // backward: dinp (=), dweight (+=), dbias (+=, deterministic split)
    const auto dout = dev::round_through<T>(dev::random_floats((size_t)N * OC, 4));
    std::vector<float> r_dinp((size_t)N * C, 0.0f), r_dw((size_t)OC * C, 0.0f), r_db(OC, 0.0f);
    ref::matmul_backward(r_dinp.data(), r_dw.data(), r_db.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    T* d_dout = dev::to_device<T>(dout);
    T *d_dinp = dev::device_alloc<T>((size_t)N * C), *d_dw = dev::device_alloc<T>((size_t)OC * C);
    T* d_db = dev::device_alloc<T>(OC);
    float* scratch = dev::device_alloc<float>(kern::matmul_backward_scratch_floats(N, OC));
    CUDA_CHECK(cudaMemset(d_dw, 0, (size_t)OC * C * sizeof(T)));
    CUDA_CHECK(cudaMemset(d_db, 0, OC * sizeof(T)));
    auto backward = [&] {
      kern::matmul_backward<T>(d_dinp, d_dw, d_db, d_dout, d_inp, d_w, nullptr, scratch, N, C, OC, 0, be);
    };
    backward();
    CUDA_CHECK(cudaDeviceSynchronize());
    dev::validate_result(d_dinp, r_dinp, "dinp", max_row_abs_sum(dout, N, OC) * max_abs(w));
    dev::validate_result(d_dw, r_dw, "dweight", max_row_abs_sum(dout, OC, N, true) * max_abs(inp));
    dev::validate_result(d_db, r_db, "dbias", max_row_abs_sum(dout, OC, N, true));
    if (version == 4 && kern::matmul_vendor_declines() > 0) {
      std::printf("  cuBLASLt declined the backward: the own kernel ran instead; not reporting v4 timings\n");
      return 1;
    }
    const float ms = dev::benchmark_kernel(repeats, backward);  // dweight/dbias keep accumulating: fine for timing
    dev::print_timing(version == 4 ? "matmul bwd cublaslt" : "matmul bwd", kern::kMmThreads, ms,
                      2 * bytes + (double)N * OC * sizeof(T), 2 * flops, peak);
    cudaFree(d_dout);
    cudaFree(d_dinp);
    cudaFree(d_dw);
    cudaFree(d_db);
    cudaFree(scratch);
  }
  cudaFree(d_inp);
  cudaFree(d_w);
  cudaFree(d_bias);
  cudaFree(d_out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 4, 3, [](auto zero, int version) {
    using T = decltype(zero);
    return run<T>(version);
  });
}
