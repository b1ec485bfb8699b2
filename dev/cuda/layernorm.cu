// dev/cuda/layernorm.cu — LayerNorm microbenchmarks (llm.c style).
//
// Versions (argv[1]):
//   1  forward, one warp per row, row re-read from L1/L2 for each pass; production (kernels/layernorm.cuh)
//   2  forward, one block per row, row cached in dynamic shared memory as fp32, block reductions
//   3  fused residual + LayerNorm forward (production)
//   4  backward (production): TY rows in flight per block, dinp per row + deterministic dweight/dbias
//      (per-block partials, ordered 2nd pass)
//   5  backward with one row in flight per block (same partials + 2nd pass): fewer threads per block
// Precision (argv[2], optional): fp32 | bf16 (default: both).
// CPU layer (cmake target dev_layernorm): validation only. GPU: nvcc -O3 -std=c++17 -arch=sm_90 -I.
//   dev/cuda/layernorm.cu cpu/ops.cpp cpu/gemm.cpp -Xcompiler -fopenmp -o layernorm && ./layernorm 1
#include "dev/cuda/common.cuh"
#include "kernels/layernorm.cuh"
#include "cpu/ops.h"

#include <algorithm>

// Version 2: one block per row. Each thread touches only its own columns of the cached row, so the block
// reductions' barriers are the only synchronisation needed.
template <class T>
__global__ void layernorm_forward_kernel2(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                                          const T* bias, int C) {
  DYNAMIC_SHARED(float, row);  // C floats
  const size_t off = (size_t)blockIdx.x * C;
  float sum = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = kern::to_float(inp[off + c]);
    row[c] = v;
    sum += v;
  }
  const float m = kern::block_sum(sum) / C;
  float sq = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) sq += (row[c] - m) * (row[c] - m);
  const float s = 1.0f / sqrtf(kern::block_sum(sq) / C + kern::kLayerNormEps);
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    out[off + c] = kern::from_float<T>((row[c] - m) * s * kern::to_float(weight[c]) + kern::to_float(bias[c]));
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = m;
    rstd[blockIdx.x] = s;
  }
}

// Version 5: one row in flight per block (blockDim.x threads span the row), the pre-2-D production kernel.
// dinp += rstd·(w·dy − mean(w·dy) − x̂·mean(w·dy·x̂)) for the block's rows, and the block's
// partial dweight (Σ x̂·dy) / dbias (Σ dy) over those rows into partials[blockIdx.x] = [dweight(C) | dbias(C)].
// Dynamic shared memory: 2·C floats. Thread t owns columns t·VEC + j·blockDim·VEC (+0..VEC-1).
template <class T, int VEC>
__global__ void layernorm_backward_kernel5(T* dinp, float* partials, const T* dout, const T* inp, const T* weight,
                                          const float* mean, const float* rstd, int N, int C) {
  DYNAMIC_SHARED(float, acc);  // [dweight partial (C) | dbias partial (C)], each entry touched by one thread only
  const int stride = blockDim.x * VEC;
  for (int c = threadIdx.x * VEC; c < C; c += stride)
    for (int k = 0; k < VEC; k++) acc[c + k] = acc[C + c + k] = 0.0f;

  for (int row = blockIdx.x; row < N; row += gridDim.x) {
    const size_t off = (size_t)row * C;
    const float m = mean[row], s = rstd[row];
    float sum_dnorm = 0.0f, sum_dnorm_xhat = 0.0f;
    for (int c = threadIdx.x * VEC; c < C; c += stride) {
      const kern::Packed<T, VEC> dy = kern::load_packed<VEC>(dout + off + c), x = kern::load_packed<VEC>(inp + off + c);
      const kern::Packed<T, VEC> w = kern::load_packed<VEC>(weight + c);
      for (int k = 0; k < VEC; k++) {
        const float dnorm = kern::to_float(w[k]) * kern::to_float(dy[k]);
        sum_dnorm += dnorm;
        sum_dnorm_xhat += dnorm * ((kern::to_float(x[k]) - m) * s);
      }
    }
    const float dnorm_mean = kern::block_sum(sum_dnorm) / C;
    const float dnorm_xhat_mean = kern::block_sum(sum_dnorm_xhat) / C;
    for (int c = threadIdx.x * VEC; c < C; c += stride) {
      const kern::Packed<T, VEC> dy = kern::load_packed<VEC>(dout + off + c), x = kern::load_packed<VEC>(inp + off + c);
      const kern::Packed<T, VEC> w = kern::load_packed<VEC>(weight + c);
      kern::Packed<T, VEC> dx = kern::load_packed<VEC>(dinp + off + c);
      for (int k = 0; k < VEC; k++) {
        const float xhat = (kern::to_float(x[k]) - m) * s, g = kern::to_float(dy[k]);
        dx[k] = kern::from_float<T>(kern::to_float(dx[k]) + s * (kern::to_float(w[k]) * g - dnorm_mean - xhat * dnorm_xhat_mean));
        acc[c + k] += xhat * g;
        acc[C + c + k] += g;
      }
      kern::store_packed<VEC>(dinp + off + c, dx);
    }
  }
  float* mine = partials + (size_t)blockIdx.x * 2 * C;
  for (int c = threadIdx.x * VEC; c < C; c += stride)
    for (int k = 0; k < VEC; k++) {
      mine[c + k] = acc[c + k];
      mine[C + c + k] = acc[C + c + k];
    }
}

template <class T>
void run(int version) {
  const dev::DevShape sh = dev::dev_shape();
  const int N = sh.B * sh.T, C = sh.C;
  const size_t n = (size_t)N * C;
  std::printf("v%d %s: N = %d rows, C = %d\n", version, dev::precision_name<T>(), N, C);
  const auto x = dev::round_through<T>(dev::random_floats(n, 1, -1.5f, 2.5f));
  const auto other = dev::round_through<T>(dev::random_floats(n, 2));
  const auto w = dev::round_through<T>(dev::random_floats(C, 3, 0.5f, 1.5f));
  const auto b = dev::round_through<T>(dev::random_floats(C, 4));
  T *d_x = dev::to_device<T>(x), *d_other = dev::to_device<T>(other), *d_w = dev::to_device<T>(w),
    *d_b = dev::to_device<T>(b);
  T *d_out = dev::device_alloc<T>(n), *d_res = dev::device_alloc<T>(n);
  float *d_mean = dev::device_alloc<float>(N), *d_rstd = dev::device_alloc<float>(N);
  std::vector<float> out_ref(n), mean_ref(N), rstd_ref(N);
  const double term = 8.0;  // (|x| + |mean|)·rstd·|w| + |b| <= ~8 for these inputs (see tests/kernels/test_layernorm.cu)

  if (version == 1 || version == 2) {
    ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(), N, C);
    auto launch = [&](int bs) {
      if (version == 1)
        kern::layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, nullptr, bs);
      else
        launch_kernel(layernorm_forward_kernel2<T>, dim3(N), dim3(bs), C * sizeof(float), nullptr, d_out, d_mean,
                      d_rstd, (const T*)d_x, (const T*)d_w, (const T*)d_b, C);
    };
    dev::sweep_block_sizes(
        "layernorm_forward", 2.0 * n * sizeof(T) + 8.0 * N,
        [&](int bs) {
          CUDA_CHECK(cudaMemset(d_out, 0xFF, n * sizeof(T)));
          launch(bs);
          dev::validate_result(d_out, out_ref, "ln_out", term);
          dev::validate_result(d_mean, mean_ref, "ln_mean", 2.5);
          dev::validate_result(d_rstd, rstd_ref, "ln_rstd", 0.0);
        },
        launch);
  } else if (version == 3) {
    std::vector<float> res_ref(n);
    ref::residual_forward(res_ref.data(), x.data(), other.data(), n);
    res_ref = dev::round_through<T>(res_ref);
    ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), res_ref.data(), w.data(), b.data(), N, C);
    auto launch = [&](int bs) {
      kern::fused_residual_layernorm_forward(d_res, d_out, d_mean, d_rstd, d_x, d_other, d_w, d_b, N, C, nullptr, bs);
    };
    dev::sweep_block_sizes(
        "fused_residual_layernorm", 4.0 * n * sizeof(T) + 8.0 * N,
        [&](int bs) {
          CUDA_CHECK(cudaMemset(d_out, 0xFF, n * sizeof(T)));
          CUDA_CHECK(cudaMemset(d_res, 0xFF, n * sizeof(T)));
          launch(bs);
          dev::validate_result(d_res, res_ref, "residual", 0.0);
          dev::validate_result(d_out, out_ref, "ln_out", term);
        },
        launch);
  } else {
    // backward: dinp/dweight/dbias accumulate into zeroed buffers here
    ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(), N, C);
    std::vector<float> dinp_ref(n, 0.0f), dw_ref(C, 0.0f), db_ref(C, 0.0f);
    ref::layernorm_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), other.data(), x.data(), w.data(),
                            mean_ref.data(), rstd_ref.data(), N, C);
    float* d_mean_ref = dev::to_device<float>(mean_ref);
    float* d_rstd_ref = dev::to_device<float>(rstd_ref);
    T *d_dw = dev::device_alloc<T>(C), *d_db = dev::device_alloc<T>(C);
    float* d_scratch = dev::device_alloc<float>(kern::layernorm_backward_scratch_floats(N, C));
    auto launch = [&] {
      if (version == 4) {
        kern::layernorm_backward(d_out, d_dw, d_db, d_scratch, d_other, d_x, d_w, d_mean_ref, d_rstd_ref, N, C, nullptr);
        return;
      }
      constexpr int P = kern::Packed128<T>::size;  // dev shapes: C % P == 0, cudaMalloc'd pointers
      const int threads = std::min(512, CEIL_DIV(CEIL_DIV(C, P), WARP_SIZE) * WARP_SIZE);
      const int blocks = std::min(N, kern::kLayerNormBwdMaxBlocks);
      launch_kernel(layernorm_backward_kernel5<T, P>, dim3(blocks), dim3(threads), 2 * C * sizeof(float), nullptr,
                    d_out, d_scratch, (const T*)d_other, (const T*)d_x, (const T*)d_w, (const float*)d_mean_ref,
                    (const float*)d_rstd_ref, N, C);
      launch_kernel(kern::layernorm_backward_reduce_kernel<T>, dim3(CEIL_DIV(2 * C, 256)), dim3(256), 0, nullptr,
                    d_dw, d_db, (const float*)d_scratch, blocks, C);
    };
    CUDA_CHECK(cudaMemset(d_out, 0, n * sizeof(T)));
    CUDA_CHECK(cudaMemset(d_dw, 0, C * sizeof(T)));
    CUDA_CHECK(cudaMemset(d_db, 0, C * sizeof(T)));
    launch();
    dev::validate_result(d_out, dinp_ref, "ln_dinp", 3.0);
    dev::validate_result(d_dw, dw_ref, "ln_dweight", 2.0 * N);  // a sum of N terms |x̂·dy| <= ~2
    dev::validate_result(d_db, db_ref, "ln_dbias", 1.0 * N);
    if (dev::kTiming) {
      const float ms = dev::benchmark_kernel(50, launch);
      dev::print_timing("layernorm_backward", 0, ms, 4.0 * n * sizeof(T) + 8.0 * N);
    }
    CUDA_CHECK(cudaFree(d_mean_ref));
    CUDA_CHECK(cudaFree(d_rstd_ref));
    CUDA_CHECK(cudaFree(d_dw));
    CUDA_CHECK(cudaFree(d_db));
    CUDA_CHECK(cudaFree(d_scratch));
  }
  for (void* p : {(void*)d_x, (void*)d_other, (void*)d_w, (void*)d_b, (void*)d_out, (void*)d_res, (void*)d_mean,
                  (void*)d_rstd})
    CUDA_CHECK(cudaFree(p));
}

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 5, 1, [](auto zero, int version) {
    using T = decltype(zero);
    run<T>(version);
    return 0;
  });
}
