// test_common.cu — the shared building blocks of kernels/common.cuh: zero fill, casts, packed chunk
// loads/stores at the tail, and the warp/block reductions every other kernel relies on.
#include "tests/kernels/kernel_test_util.h"

using namespace ktest;

TEST(KernelCommon, FillZero) {
  for (size_t n : {1, 37, 100003}) {
    DeviceArray<__nv_bfloat16> b(n);  // poisoned (NaN) by the constructor
    DeviceArray<float> f(n);
    kern::fill_zero(b.ptr, n, 0);
    kern::fill_zero(f.ptr, n, 0);
    compare("fill_zero bf16 n=" + std::to_string(n), b.download(), std::vector<float>(n, 0.0f), tolerance<float>(0));
    compare("fill_zero fp32 n=" + std::to_string(n), f.download(), std::vector<float>(n, 0.0f), tolerance<float>(0));
  }
}

TEST(KernelCommon, Casts) {
  const size_t n = 4099;
  const auto x = random_vec(n, 5, -100.0f, 100.0f);
  DeviceArray<float> f(x), back(n);
  DeviceArray<__nv_bfloat16> b(n);
  kern::cast(b.ptr, (const float*)f.ptr, n, 0);
  // fp32 -> bf16 is round to nearest even: exactly what the host conversion gives
  compare("cast fp32->bf16", b.download(), round_through<__nv_bfloat16>(x), tolerance<float>(0));
  kern::cast(back.ptr, (const __nv_bfloat16*)b.ptr, n, 0);
  compare("cast bf16->fp32", back.download(), round_through<__nv_bfloat16>(x), tolerance<float>(0));
}

// load_chunk/store_chunk at the tail: copy n elements with VEC-wide chunks; nothing past n may be touched.
template <class T, int VEC>
__global__ void copy_chunks_kernel(T* out, const T* inp, size_t n) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  kern::store_chunk<VEC>(out, i, n, kern::load_chunk<VEC>(inp, i, n));
}

TEST(KernelCommon, ChunkTail) {
  for (size_t n : {1, 7, 8, 9, 1001}) {
    const auto x = round_through<__nv_bfloat16>(random_vec(n, 6));
    DeviceArray<__nv_bfloat16> in(x), out(n + 8);  // 8 guard elements after the end
    launch_kernel(copy_chunks_kernel<__nv_bfloat16, 8>, dim3(CEIL_DIV(n, 8 * 32)), dim3(32), 0, nullptr, out.ptr,
                  (const __nv_bfloat16*)in.ptr, n);
    compare("chunk copy n=" + std::to_string(n), out.download(0, n), x, tolerance<float>(0));
    for (float g : out.download(n, 8)) EXPECT_TRUE(std::isnan(g)) << "wrote past the end";
  }
}

// block_sum/block_max over one block; integer-valued inputs so every summation order is exact.
__global__ void block_reduce_kernel(float* sums, float* maxes, const float* x, int n) {
  float s = 0.0f, m = -INFINITY;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    s += x[i];
    m = fmaxf(m, x[i]);
  }
  const float total = kern::block_sum(s);
  const float again = kern::block_sum(s + 1.0f);  // immediately reused: the trailing barrier must protect it
  const float mx = kern::block_max(m);
  sums[threadIdx.x] = total;
  if (threadIdx.x == 0) sums[blockDim.x] = again;
  maxes[threadIdx.x] = mx;
}

TEST(KernelCommon, BlockReductions) {
  for (int block : {32, 64, 96, 256, 1024}) {
    const int n = 3000;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = (float)((i * 37) % 101) - 50.0f;  // integers in [-50, 50]
    double sum = 0, mx = -1e30;
    for (float v : x) {
      sum += v;
      mx = std::max(mx, (double)v);
    }
    DeviceArray<float> d_x(x), d_sums(block + 1), d_max(block);
    launch_kernel(block_reduce_kernel, dim3(1), dim3(block), 0, nullptr, d_sums.ptr, d_max.ptr, (const float*)d_x.ptr,
                  n);
    const auto sums = d_sums.download();
    std::vector<float> want(block + 1, (float)sum);
    want[block] = (float)(sum + block);
    compare("block_sum block=" + std::to_string(block), sums, want, tolerance<float>(0));
    compare("block_max block=" + std::to_string(block), d_max.download(), std::vector<float>(block, (float)mx),
            tolerance<float>(0));
  }
}
