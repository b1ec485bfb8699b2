// test_cucpu_semantics.cpp — the CUDA-on-CPU layer gives CUDA's answers: indices, barriers, shuffles (with
// width), votes, atomics, dynamic shared memory poisoning, cooperative groups, bf16 rounding, the fake
// runtime, and a sample reduction kernel against a double-precision host sum. Expected values are closed
// forms (computed on the host from CUDA's/PTX's documented rules), never outputs of the layer itself.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cuda_cpu/compat.cuh"

namespace {

template <class T>
T* dev_alloc(size_t n) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return p;
}
template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

// Restores the layer's settings after a test changes them.
struct ConfigGuard {
  cucpu::Config saved = cucpu::config();
  ~ConfigGuard() { cucpu::config() = saved; }
};

// ------------------------------------------------------------------ indices
__global__ void index_kernel(uint32_t* out) {
  unsigned bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned n = blockDim.x * blockDim.y * blockDim.z;
  uint32_t* o = out + 4 * (bid * n + tid);
  o[0] = blockIdx.x | blockIdx.y << 8 | blockIdx.z << 16;
  o[1] = threadIdx.x | threadIdx.y << 8 | threadIdx.z << 16;
  o[2] = blockDim.x | blockDim.y << 8 | blockDim.z << 16;
  o[3] = gridDim.x | gridDim.y << 8 | gridDim.z << 16;
}

TEST(CucpuSemantics, IndicesCoverGridAndBlockIn3D) {
  dim3 grid(3, 2, 2), block(8, 4, 2);
  const unsigned nb = 12, nt = 64;
  uint32_t* d = dev_alloc<uint32_t>(4 * nb * nt);
  launch_kernel(index_kernel, grid, block, 0, 0, d);
  auto h = to_host(d, 4 * nb * nt);
  for (unsigned bz = 0; bz < 2; ++bz)
    for (unsigned by = 0; by < 2; ++by)
      for (unsigned bx = 0; bx < 3; ++bx)
        for (unsigned tz = 0; tz < 2; ++tz)
          for (unsigned ty = 0; ty < 4; ++ty)
            for (unsigned tx = 0; tx < 8; ++tx) {
              unsigned bid = bx + 3 * (by + 2 * bz), tid = tx + 8 * (ty + 4 * tz);
              const uint32_t* o = &h[4 * (bid * nt + tid)];
              ASSERT_EQ(o[0], bx | by << 8 | bz << 16);
              ASSERT_EQ(o[1], tx | ty << 8 | tz << 16);
              ASSERT_EQ(o[2], 8u | 4u << 8 | 2u << 16);
              ASSERT_EQ(o[3], 3u | 2u << 8 | 2u << 16);
            }
  CUDA_CHECK(cudaFree(d));
}

// ------------------------------------------------------------------ barriers
// Each thread publishes a value, then reads its neighbour's after the barrier; repeated to reuse smem.
__global__ void neighbour_kernel(int* out, int rounds) {
  __shared__ int s[256];
  int t = threadIdx.x, n = blockDim.x, acc = 0;
  for (int r = 0; r < rounds; ++r) {
    s[t] = t * 7 + r + (int)blockIdx.x;
    __syncthreads();
    acc += s[(t + 1) % n];
    __syncthreads();
  }
  out[blockIdx.x * n + t] = acc;
}

__global__ void barrier_reduce_kernel(int* out) {
  int t = threadIdx.x;
  out[0 * blockDim.x + t] = __syncthreads_count(t % 3 == 0);
  out[1 * blockDim.x + t] = __syncthreads_and(t < 1000);
  out[2 * blockDim.x + t] = __syncthreads_and(t != 5);
  out[3 * blockDim.x + t] = __syncthreads_or(t == 77);
  out[4 * blockDim.x + t] = __syncthreads_or(0);
}

TEST(CucpuSemantics, BarrierOrdersSharedMemory) {
  const int n = 256, blocks = 3, rounds = 5;
  int* d = dev_alloc<int>(n * blocks);
  launch_kernel(neighbour_kernel, blocks, n, 0, 0, d, rounds);
  auto h = to_host(d, n * blocks);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < n; ++t) {
      int want = 0;
      for (int r = 0; r < rounds; ++r) want += ((t + 1) % n) * 7 + r + b;
      ASSERT_EQ(h[b * n + t], want) << "block " << b << " thread " << t;
    }
  CUDA_CHECK(cudaFree(d));
}

TEST(CucpuSemantics, SyncthreadsCountAndOr) {
  const int n = 200;  // not a multiple of 32: a partial last warp
  int* d = dev_alloc<int>(5 * n);
  launch_kernel(barrier_reduce_kernel, 1, n, 0, 0, d);
  auto h = to_host(d, 5 * n);
  for (int t = 0; t < n; ++t) {
    EXPECT_EQ(h[t], 67);  // multiples of 3 in [0,200)
    EXPECT_EQ(h[n + t], 1);
    EXPECT_EQ(h[2 * n + t], 0);
    EXPECT_EQ(h[3 * n + t], 1);  // thread 77 exists
    EXPECT_EQ(h[4 * n + t], 0);
  }
}

// ------------------------------------------------------------------ shuffles
enum ShflKind { kIdx, kUp, kDown, kXor };

__global__ void shuffle_kernel(int* out, int kind, int arg, int width) {
  int t = threadIdx.x, lane = t % 32;
  int v = 1000 + t;
  int r = 0;
  if (kind == kIdx) r = __shfl_sync(0xffffffffu, v, arg, width);
  if (kind == kUp) r = __shfl_up_sync(0xffffffffu, v, (unsigned)arg, width);
  if (kind == kDown) r = __shfl_down_sync(0xffffffffu, v, (unsigned)arg, width);
  if (kind == kXor) r = __shfl_xor_sync(0xffffffffu, v, arg, width);
  out[t] = r;
  (void)lane;
}

// Expected source lane, from the CUDA programming guide's definitions.
int expected_src(int kind, int lane, int arg, int width) {
  int seg = lane / width * width;
  switch (kind) {
    case kIdx: return seg + arg % width;
    case kUp: return lane - seg >= arg ? lane - arg : lane;
    case kDown: return lane - seg + arg < width ? lane + arg : lane;
    default: {
      int s = lane ^ arg;
      return s >= seg + width ? lane : s;
    }
  }
}

TEST(CucpuSemantics, ShufflesWithEveryWidth) {
  const int n = 64;
  int* d = dev_alloc<int>(n);
  for (int kind : {kIdx, kUp, kDown, kXor})
    for (int width : {32, 16, 8, 4, 2, 1})
      for (int arg : {0, 1, 3, 5, 16, 31}) {
        if (kind == kXor && arg >= 32) continue;
        launch_kernel(shuffle_kernel, 1, n, 0, 0, d, kind, arg, width);
        auto h = to_host(d, n);
        for (int t = 0; t < n; ++t) {
          int want = 1000 + t / 32 * 32 + expected_src(kind, t % 32, arg, width);
          ASSERT_EQ(h[t], want) << "kind " << kind << " width " << width << " arg " << arg << " thread " << t;
        }
      }
  CUDA_CHECK(cudaFree(d));
}

__global__ void shuffle_types_kernel(double* od, __nv_bfloat16* ob, float4* of4) {
  int t = threadIdx.x;
  double x = 0.5 * t + 1e-12;
  __nv_bfloat16 b = __float2bfloat16(0.25f * t);
  od[t] = __shfl_xor_sync(0xffffffffu, x, 1);
  ob[t] = __shfl_down_sync(0xffffffffu, b, 2);
  // float4 is 16 bytes: shuffle component-wise, as CUDA requires
  float4 f = make_float4(t, t + 0.5f, -t, 2.f * t);
  float4 g;
  g.x = __shfl_sync(0xffffffffu, f.x, 0);
  g.y = __shfl_sync(0xffffffffu, f.y, 0);
  g.z = __shfl_sync(0xffffffffu, f.z, 31);
  g.w = __shfl_sync(0xffffffffu, f.w, 31);
  of4[t] = g;
}

TEST(CucpuSemantics, ShuffleDoubleAndBf16Values) {
  double* od = dev_alloc<double>(32);
  __nv_bfloat16* ob = dev_alloc<__nv_bfloat16>(32);
  float4* of4 = dev_alloc<float4>(32);
  launch_kernel(shuffle_types_kernel, 1, 32, 0, 0, od, ob, of4);
  auto hd = to_host(od, 32);
  auto hb = to_host(ob, 32);
  auto hf = to_host(of4, 32);
  for (int t = 0; t < 32; ++t) {
    EXPECT_EQ(hd[t], 0.5 * (t ^ 1) + 1e-12);
    EXPECT_EQ(__bfloat162float(hb[t]), 0.25f * (t + 2 < 32 ? t + 2 : t));
    EXPECT_EQ(hf[t].x, 0.f);
    EXPECT_EQ(hf[t].y, 0.5f);
    EXPECT_EQ(hf[t].z, -31.f);
    EXPECT_EQ(hf[t].w, 62.f);
  }
}

__global__ void vote_kernel(unsigned* out) {
  int t = threadIdx.x, lane = t % 32;
  out[4 * t + 0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  out[4 * t + 1] = __any_sync(0xffffffffu, t == 40);
  out[4 * t + 2] = __all_sync(0xffffffffu, lane < 32);
  out[4 * t + 3] = __all_sync(0xffffffffu, lane != 7);
}

TEST(CucpuSemantics, BallotAnyAll) {
  unsigned* d = dev_alloc<unsigned>(4 * 64);
  launch_kernel(vote_kernel, 1, 64, 0, 0, d);
  auto h = to_host(d, 4 * 64);
  unsigned want_ballot = 0;
  for (int l = 0; l < 32; l += 3) want_ballot |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    EXPECT_EQ(h[4 * t], want_ballot);
    EXPECT_EQ(h[4 * t + 1], t >= 32 ? 1u : 0u);  // only warp 1 has thread 40
    EXPECT_EQ(h[4 * t + 2], 1u);
    EXPECT_EQ(h[4 * t + 3], 0u);
  }
}

// Two half-warps shuffle with disjoint masks at the same time (what tiled_partition<16> does).
__global__ void half_warp_kernel(int* out) {
  int lane = threadIdx.x % 32;
  unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  int v = lane * lane;
  out[threadIdx.x] = __shfl_sync(mask, v, 3, 16);
  __syncwarp(mask);
}

TEST(CucpuSemantics, DisjointMasksInOneWarp) {
  ConfigGuard g;
  int* d = dev_alloc<int>(32);
  for (int seed = 0; seed < 3; ++seed) {  // fixed order, then random lane orders that interleave the halves
    cucpu::config().shuffle = seed > 0;
    cucpu::config().seed = seed;
    launch_kernel(half_warp_kernel, 1, 32, 0, 0, d);
    auto h = to_host(d, 32);
    for (int l = 0; l < 32; ++l) EXPECT_EQ(h[l], (l / 16 * 16 + 3) * (l / 16 * 16 + 3));
  }
}

// ------------------------------------------------------------------ atomics
__global__ void atomics_kernel(int* i, unsigned* u, unsigned long long* ull, float* f, double* d, int* mx,
                               int* mn, int* cas_counter) {
  int gid = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(i, 1);
  atomicAdd(u, 2u);
  atomicAdd(ull, 3ull);
  atomicAdd(f, 1.0f);
  atomicAdd(d, 0.5);
  atomicMax(mx, (gid * 7919) % 10007);
  atomicMin(mn, (gid * 7919) % 10007 + 5);
  int old = atomicOr(cas_counter, 0), assumed;  // increment through a CAS loop (an atomic first read: TSan)
  do {
    assumed = old;
    old = atomicCAS(cas_counter, assumed, assumed + 1);
  } while (old != assumed);
}

TEST(CucpuSemantics, AtomicsCountEveryThread) {
  const int blocks = 128, threads = 256, n = blocks * threads;
  int* i = dev_alloc<int>(1);
  unsigned* u = dev_alloc<unsigned>(1);
  unsigned long long* ull = dev_alloc<unsigned long long>(1);
  float* f = dev_alloc<float>(1);
  double* dd = dev_alloc<double>(1);
  int *mx = dev_alloc<int>(1), *mn = dev_alloc<int>(1), *cas = dev_alloc<int>(1);
  for (void* p : {(void*)i, (void*)u, (void*)f, (void*)mx, (void*)cas}) CUDA_CHECK(cudaMemset(p, 0, 4));
  for (void* p : {(void*)ull, (void*)dd}) CUDA_CHECK(cudaMemset(p, 0, 8));
  int big = 1 << 30;
  CUDA_CHECK(cudaMemcpy(mn, &big, sizeof big, cudaMemcpyHostToDevice));
  launch_kernel(atomics_kernel, blocks, threads, 0, 0, i, u, ull, f, dd, mx, mn, cas);
  int want_max = 0, want_min = 1 << 30;
  for (int g = 0; g < n; ++g) {
    want_max = std::max(want_max, (g * 7919) % 10007);
    want_min = std::min(want_min, (g * 7919) % 10007 + 5);
  }
  EXPECT_EQ(to_host(i, 1)[0], n);
  EXPECT_EQ(to_host(u, 1)[0], 2u * n);
  EXPECT_EQ(to_host(ull, 1)[0], 3ull * n);
  EXPECT_EQ(to_host(f, 1)[0], (float)n);  // exact: integers below 2^24
  EXPECT_EQ(to_host(dd, 1)[0], 0.5 * n);
  EXPECT_EQ(to_host(mx, 1)[0], want_max);
  EXPECT_EQ(to_host(mn, 1)[0], want_min);
  EXPECT_EQ(to_host(cas, 1)[0], n);
}

// ------------------------------------------------------------------ dynamic shared memory
__global__ void smem_poison_kernel(uint32_t* seen) {
  DYNAMIC_SHARED(uint32_t, s);
  int t = threadIdx.x;
  seen[blockIdx.x * blockDim.x + t] = s[t];  // read before anyone writes: must be the poison
  __syncthreads();
  s[t] = 0x12345678u + t;  // dirty it for the next block
}

TEST(CucpuSemantics, DynamicSharedMemoryIsPoisonedPerBlock) {
  const int blocks = 3, n = 64;
  uint32_t* d = dev_alloc<uint32_t>(blocks * n);
  launch_kernel(smem_poison_kernel, blocks, n, n * sizeof(uint32_t), 0, d);
  for (uint32_t v : to_host(d, blocks * n)) ASSERT_EQ(v, 0xFFFFFFFFu);
  float f = cucpu::bits_as<float>(0xFFFFFFFFu);
  EXPECT_TRUE(std::isnan(f));  // uninitialised fp32 reads are NaN
  __nv_bfloat16 b = cucpu::bits_as<__nv_bfloat16>((uint16_t)0xFFFF);
  EXPECT_TRUE(std::isnan(__bfloat162float(b)));  // and so are bf16 ones
}

// ------------------------------------------------------------------ cooperative groups
template <int N>
__global__ void cg_kernel(float* sum, float* mx, float* mn, int* info, unsigned* ballots) {
  cg::thread_block block = cg::this_thread_block();
  cg::thread_block_tile<N> tile = cg::tiled_partition<N>(block);
  int t = block.thread_rank();
  float v = (float)((t * 37) % 101) - 50.f;
  sum[t] = cg::reduce(tile, v, cg::plus<float>());
  mx[t] = cg::reduce(tile, v, cg::greater<float>());
  mn[t] = cg::reduce(tile, v, cg::less<float>());
  info[3 * t + 0] = tile.thread_rank();
  info[3 * t + 1] = tile.meta_group_rank();
  info[3 * t + 2] = tile.meta_group_size();
  ballots[t] = tile.ballot(tile.thread_rank() % 2 == 1);
  block.sync();
}

template <int N>
void check_cg() {
  const int n = 128;
  float *s = dev_alloc<float>(n), *mx = dev_alloc<float>(n), *mn = dev_alloc<float>(n);
  int* info = dev_alloc<int>(3 * n);
  unsigned* bal = dev_alloc<unsigned>(n);
  launch_kernel(cg_kernel<N>, 1, n, 0, 0, s, mx, mn, info, bal);
  auto hs = to_host(s, n), hmx = to_host(mx, n), hmn = to_host(mn, n);
  auto hi = to_host(info, 3 * n);
  auto hb = to_host(bal, n);
  unsigned odd = 0;
  for (int r = 1; r < N; r += 2) odd |= 1u << r;
  for (int t = 0; t < n; ++t) {
    int base = t / N * N;
    float ws = 0, wmx = -1e30f, wmn = 1e30f;
    for (int k = base; k < base + N; ++k) {
      float v = (float)((k * 37) % 101) - 50.f;
      ws += v;
      wmx = std::max(wmx, v);
      wmn = std::min(wmn, v);
    }
    ASSERT_EQ(hs[t], ws) << "N=" << N << " t=" << t;  // small integers: exact in any order
    ASSERT_EQ(hmx[t], wmx);
    ASSERT_EQ(hmn[t], wmn);
    ASSERT_EQ(hi[3 * t], t % N);
    ASSERT_EQ(hi[3 * t + 1], t / N);
    ASSERT_EQ(hi[3 * t + 2], n / N);
    ASSERT_EQ(hb[t], odd);
  }
}

TEST(CucpuSemantics, CooperativeGroupsTilesAndReduce) {
  check_cg<32>();
  check_cg<16>();
  check_cg<4>();
  check_cg<1>();
}

// ------------------------------------------------------------------ bf16 (NVIDIA's host conversion code)
TEST(CucpuSemantics, Bf16RoundsToNearestEven) {
  auto raw = [](__nv_bfloat16 b) { return cucpu::bits_as<uint16_t>(b); };
  EXPECT_EQ(raw(__float2bfloat16(3.14159f)), 0x4049);
  EXPECT_EQ(__bfloat162float(__float2bfloat16(3.14159f)), 3.140625f);
  // 1 + 2^-8 lies exactly halfway between 1.0 (0x3F80, even) and 1.0078125 (0x3F81): ties go to even
  EXPECT_EQ(raw(__float2bfloat16(1.0f + 0.00390625f)), 0x3F80);
  // 1.0078125 + 2^-8 lies halfway between 0x3F81 (odd) and 0x3F82 (even)
  EXPECT_EQ(raw(__float2bfloat16(1.0078125f + 0.00390625f)), 0x3F82);
  // just above the halfway point rounds up
  EXPECT_EQ(raw(__float2bfloat16(std::nextafter(1.0f + 0.00390625f, 2.0f))), 0x3F81);
  EXPECT_EQ(__bfloat162float(__float2bfloat16(65504.0f)), 65536.0f);
  EXPECT_EQ(raw(__float2bfloat16(-0.0f)), 0x8000);
  EXPECT_TRUE(std::isnan(__bfloat162float(__float2bfloat16(NAN))));
  EXPECT_TRUE(std::isinf(__bfloat162float(__float2bfloat16(std::numeric_limits<float>::infinity()))));
}

// ------------------------------------------------------------------ sample reduction kernel
// One block per row: each thread sums a strided slice, warps reduce with shuffles, warp sums meet in shared
// memory, warp 0 reduces them. Typical of the row kernels in kernels/.
__global__ void row_sum_kernel(float* out, const float* in, int cols) {
  __shared__ float warp_sums[32];
  const float* row = in + (size_t)blockIdx.x * cols;
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  float s = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s += __ldg(row + c);
  for (int o = 16; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o);
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < nwarps ? warp_sums[lane] : 0.f;
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) __stcs(out + blockIdx.x, s);
  }
}

TEST(CucpuSemantics, SampleRowReductionMatchesDoubleSum) {
  const int rows = 7, cols = 1000;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  std::vector<float> h(rows * cols);
  for (float& x : h) x = U(rng);
  float* din = dev_alloc<float>(h.size());
  float* dout = dev_alloc<float>(rows);  // poisoned (NaN) by cudaMalloc: every row must be written
  CUDA_CHECK(cudaMemcpy(din, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
  for (int threads : {32, 128, 256, 1024}) {
    launch_kernel(row_sum_kernel, rows, threads, 0, 0, dout, din, cols);
    auto o = to_host(dout, rows);
    for (int r = 0; r < rows; ++r) {
      double ref = 0;
      for (int c = 0; c < cols; ++c) ref += h[r * cols + c];
      // fp32 vs double: ≤ (additions along the longest path)·u·Σ|x| = (ceil(1000/32) + 5 + 5)·2^-24·1000 ≤ 2.5e-3
      // (|x| ≤ 1, worst at 32 threads); 1e-5·cols = 1e-2 is 4× that, and a lost or doubled element is ~0.5.
      EXPECT_NEAR(o[r], ref, 1e-5 * cols) << "threads " << threads << " row " << r;
    }
  }
}

// ------------------------------------------------------------------ launch details
// Kernels may modify their by-value parameters: every thread gets its own copy.
__global__ void param_copy_kernel(const float* in, float* out, int stride) {
  in += threadIdx.x * stride;
  out += threadIdx.x;
  stride = 0;
  __syncthreads();  // others have modified their copies by now
  out[stride] = in[0];
}

template <int Mul, typename T>
__global__ void template_kernel(T* out) {
  out[threadIdx.x] = (T)(Mul * threadIdx.x);
}

TEST(CucpuSemantics, ParametersAreCopiedPerThreadAndTemplatesLaunch) {
  float* in = dev_alloc<float>(64 * 3);
  float* out = dev_alloc<float>(64);
  std::vector<float> h(64 * 3);
  for (size_t k = 0; k < h.size(); ++k) h[k] = (float)k;
  CUDA_CHECK(cudaMemcpy(in, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  launch_kernel(param_copy_kernel, 1, 64, 0, 0, in, out, 3);
  auto o = to_host(out, 64);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(o[t], 3.f * t);
  double* od = dev_alloc<double>(64);
  launch_kernel(template_kernel<3, double>, 1, 64, 0, 0, od);
  auto hd = to_host(od, 64);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(hd[t], 3.0 * t);
}

// Correct kernels give identical results in random-order mode (no false alarms).
TEST(CucpuSemantics, RandomOrderKeepsCorrectResults) {
  ConfigGuard g;
  const int rows = 5, cols = 300;
  std::vector<float> h(rows * cols);
  for (size_t k = 0; k < h.size(); ++k) h[k] = (float)((k * 13) % 17) - 8.f;  // integers: exact sums
  float* din = dev_alloc<float>(h.size());
  float* dout = dev_alloc<float>(rows);
  CUDA_CHECK(cudaMemcpy(din, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
  for (uint64_t seed : {1, 2, 3, 4}) {
    cucpu::config().shuffle = true;
    cucpu::config().seed = seed;
    launch_kernel(row_sum_kernel, rows, 128, 0, 0, dout, din, cols);
    auto o = to_host(dout, rows);
    for (int r = 0; r < rows; ++r) {
      float ref = 0;
      for (int c = 0; c < cols; ++c) ref += h[r * cols + c];
      EXPECT_EQ(o[r], ref) << "seed " << seed;
    }
    check_cg<16>();
  }
}

// ------------------------------------------------------------------ the fake runtime
TEST(CucpuRuntime, MallocPoisonsAndCopiesAreChecked) {
  float* d = dev_alloc<float>(10);
  EXPECT_EQ((uintptr_t)d % 256, 0u);
  for (float v : to_host(d, 10)) EXPECT_TRUE(std::isnan(v));
  float h[10] = {0};
  // out of the allocation, or the wrong direction: cudaErrorInvalidValue, and it becomes the last error
  EXPECT_EQ(cudaMemcpy(h, d, 11 * sizeof(float), cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(h, d, sizeof h, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemset(h, 0, sizeof h), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(h), cudaErrorInvalidValue);
  (void)cudaGetLastError();
  CUDA_CHECK(cudaMemset(d + 2, 0, 3 * sizeof(float)));
  auto v = to_host(d, 10);
  EXPECT_TRUE(std::isnan(v[1]));
  EXPECT_EQ(v[2], 0.f);
  EXPECT_EQ(v[4], 0.f);
  EXPECT_TRUE(std::isnan(v[5]));
  EXPECT_STREQ(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument");
  CUDA_CHECK(cudaFree(d));
}

TEST(CucpuRuntime, DevicePropertiesAndEvents) {
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  EXPECT_EQ(count, 1);
  cudaDeviceProp p;
  CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  EXPECT_EQ(p.warpSize, 32);
  EXPECT_EQ(p.maxThreadsPerBlock, 1024);
  EXPECT_EQ(p.multiProcessorCount, 4);
  EXPECT_EQ(p.sharedMemPerBlock, 48u * 1024);
  int sms = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  EXPECT_EQ(sms, 4);
  cudaStream_t s;
  cudaEvent_t a, b;
  CUDA_CHECK(cudaStreamCreate(&s));
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  CUDA_CHECK(cudaEventRecord(a, s));
  int* d = dev_alloc<int>(256 * 4);
  launch_kernel(neighbour_kernel, 4, 256, 0, s, d, 50);
  CUDA_CHECK(cudaEventRecord(b, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  float ms = -1;
  CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  EXPECT_GT(ms, 0.f);
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  CUDA_CHECK(cudaStreamDestroy(s));
}

TEST(CucpuRuntimeDeathTest, CudaCheckNamesTheLineAndError) {
  float h[4];
  EXPECT_DEATH(CUDA_CHECK(cudaMemcpy(h, h, 16, cudaMemcpyDeviceToHost)),
               "test_cucpu_semantics.cpp:[0-9]+: CUDA error 1 \\(invalid argument\\) in cudaMemcpy");
}

}  // namespace
