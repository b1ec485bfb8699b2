// dev/cuda/classifier.cu — fused softmax + cross-entropy + dlogits lab (GPT-2's LM head loss).
//
// Versions (argv[1]; argv[2] = fp32 | bf16, default both):
//   1  naive: one THREAD per row, three sequential sweeps over the vocabulary (max, Σexp, gradient)
//   2  one BLOCK per row, online max/Σexp per thread, block reduction, in-place dlogits; one scalar (2-byte bf16)
//      load in flight per thread (the trainer's kernel until v3)
//   3  kernels/classifier.cuh: v2 reading and writing 16-byte chunks (8 bf16 / 4 fp32), 2 chunk loads in flight per
//      thread in pass 1, one rescale of the running sum per chunk, streaming loads/stores in pass 2
//   v2 and v3 are timed at block sizes 256, 512, 1024
// Validation: losses against ref::softmax_crossentropy_forward, dlogits against ref::softmax_crossentropy_backward
// with dloss = 1/num_valid (every 10th target is the ignore index -100).
// Bytes counted: one read and one write of the logits (the second read mostly hits L2) + targets + losses.
// GPU shape: B·T = 8192 rows, V=50257, Vp=50304 (GPT-2). CPU layer: 6 rows of the same vocabulary.
#include "kernels/classifier.cuh"
#include "dev/cuda/common.cuh"
#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

// ---- version 1: one thread per row ------------------------------------------------------------------------
template <typename floatX>
__global__ void classifier_naive_kernel(floatX* logits, float* losses, const int* targets, int N, int V, int Vp,
                                        float dloss) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= N) return;
  floatX* x = logits + (size_t)row * Vp;
  const int target = targets[row];
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = fmaxf(m, kern::to_float(x[i]));
  float s = 0.0f;
  for (int i = 0; i < V; i++) s += expf(kern::to_float(x[i]) - m);
  const bool valid = target >= 0 && target < V;
  losses[row] = valid ? logf(s) - (kern::to_float(x[target]) - m) : 0.0f;
  for (int i = 0; i < Vp; i++) {
    const float p = expf(kern::to_float(x[i]) - m) / s;
    x[i] = kern::from_float<floatX>(valid && i < V ? (p - (i == target ? 1.0f : 0.0f)) * dloss : 0.0f);
  }
}

// ---- version 2: one block per row, scalar strided loads ------------------------------------------------------
template <typename floatX>
__global__ void classifier_scalar_kernel(floatX* logits, float* losses, const int* targets, const int* valid_count,
                                        float dloss_scale, int V, int Vp, int write_dlogits) {
  const int row = blockIdx.x;
  floatX* x = logits + (size_t)row * Vp;
  const int target = targets[row];
  const bool valid = target >= 0 && target < V;
  // thread 0 reads the target logit now; the barriers inside block_max/block_sum order it before pass 2 writes
  const float x_target = valid && threadIdx.x == 0 ? kern::to_float(x[target]) : 0.0f;

  // pass 1: per-thread online max / sum of exp over the thread's strided columns
  float m = -INFINITY, s = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = kern::to_float(x[i]);
    if (v > m) {
      s = s * expf(m - v) + 1.0f;  // m == -inf: s is 0 and expf(-inf) == 0
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  const float row_max = kern::block_max(m);
  const float row_sum = kern::block_sum(m == -INFINITY ? 0.0f : s * expf(m - row_max));  // rescale to the row max
  const float inv_sum = 1.0f / row_sum;

  if (threadIdx.x == 0) losses[row] = valid ? -(x_target - row_max - logf(row_sum)) : 0.0f;
  if (!write_dlogits) return;
  const int nvalid = *valid_count;
  const float dloss = (valid && nvalid > 0) ? dloss_scale / (float)nvalid : 0.0f;
  // pass 2: each thread rewrites exactly the columns it read, so no barrier is needed between read and write
  for (int i = threadIdx.x; i < Vp; i += blockDim.x) {
    float g = 0.0f;
    if (i < V && valid) {
      const float p = expf(kern::to_float(x[i]) - row_max) * inv_sum;
      g = (p - (i == target ? 1.0f : 0.0f)) * dloss;
    }
    x[i] = kern::from_float<floatX>(g);
  }
}

namespace {

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

template <typename T>
int run(int version) {
  const bool gpu = dev::kTiming, bf16 = std::is_same<T, __nv_bfloat16>::value;
  const int N = gpu ? 8192 : 6, V = 50257, Vp = 50304;
  std::printf("classifier v%d %s  N=%d V=%d Vp=%d\n", version, bf16 ? "bf16" : "fp32", N, V, Vp);
  const size_t n = (size_t)N * Vp;
  const auto logits = dev::round_through<T>(dev::random_floats(n, 1, -4.0f, 4.0f));
  auto targets = dev::random_ints(N, V, 2);
  int valid = 0;
  for (int i = 0; i < N; i++) {
    if (i % 10 == 3) targets[i] = -100;
    valid += targets[i] != -100;
  }
  const float dloss = 1.0f / (float)valid;
  std::vector<float> r_losses(N), r_probs(n), r_dlogits(n, 0.0f);
  ref::softmax_crossentropy_forward(r_losses.data(), r_probs.data(), logits.data(), targets.data(), N, V, Vp);
  ref::softmax_crossentropy_backward(r_dlogits.data(), r_probs.data(), targets.data(), N, V, Vp, dloss);
  r_probs = std::vector<float>();  // free 1.6 GB at the GPU shape

  T* d_logits = dev::device_alloc<T>(n);
  const T* d_logits_init = dev::to_device<T>(logits);  // pristine copy: every run overwrites d_logits
  float* d_losses = dev::device_alloc<float>(N);
  int* d_targets = dev::ints_to_device(targets);
  int* d_count = dev::device_alloc<int>(1);
  auto run_kernel = [&](int block) {
    if (version == 1) {
      launch_kernel(classifier_naive_kernel<T>, dim3((N + block - 1) / block), dim3(block), 0, 0, d_logits, d_losses,
                    (const int*)d_targets, N, V, Vp, dloss);
    } else if (version == 2) {
      launch_kernel(kern::classifier_count_valid_kernel<void>, dim3(1), dim3(256), 0, 0, d_count, (const int*)d_targets,
                    N, V);
      launch_kernel(classifier_scalar_kernel<T>, dim3(N), dim3(block), 0, 0, d_logits, d_losses, (const int*)d_targets,
                    (const int*)d_count, 1.0f, V, Vp, 1);
    } else {
      kern::fused_classifier<T>(d_logits, d_losses, d_targets, d_count, N, V, Vp, 1.0f, true, 0, block);
    }
  };
  const std::vector<int> blocks = version == 1 ? std::vector<int>{32, 128} : std::vector<int>{256, 512, 1024};
  for (int block : blocks) {
    CUDA_CHECK(cudaMemcpy(d_logits, d_logits_init, n * sizeof(T), cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemset(d_losses, 0xFF, N * sizeof(float)));
    run_kernel(block);
    CUDA_CHECK(cudaDeviceSynchronize());
    dev::validate_result(d_losses, r_losses, "losses", max_abs(logits) + std::log((double)V));
    dev::validate_result(d_logits, r_dlogits, "dlogits", dloss);
  }
  // Timing: after the first run the buffer holds dlogits, which is just as good an input (same work).
  const double bytes = 2.0 * n * sizeof(T) + N * (sizeof(int) + sizeof(float));
  for (int block : blocks) {
    const float ms = dev::benchmark_kernel(version == 1 ? 2 : 10, [&] { run_kernel(block); });
    dev::print_timing(version == 1 ? "classifier naive" : version == 2 ? "classifier fused scalar" : "classifier fused 128-bit",
                      block, ms, bytes);
  }
  cudaFree(d_logits);
  cudaFree((void*)d_logits_init);
  cudaFree(d_losses);
  cudaFree(d_targets);
  cudaFree(d_count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 3, 3, [](auto zero, int version) {
    using T = decltype(zero);
    return run<T>(version);
  });
}
