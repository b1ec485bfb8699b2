// test_cucpu_bugs.cpp — the safety net is proven, not assumed: each planted bug below is caught by the layer
// (a death test whose message must name the kernel and the source line, or a wrong result in random-order
// mode), and each has a correct twin that passes, so a test cannot pass by the layer aborting everything.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda_cpu/compat.cuh"

namespace {

// Tests that run a planted race on purpose cannot run in a TSan build (TSan stops at the race: see the
// CucpuSanitizerDeathTest cases instead).
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() GTEST_SKIP() << "planted race: covered by the TSan death tests"
#else
#define SKIP_UNDER_TSAN() (void)0
#endif

struct ConfigGuard {
  cucpu::Config saved = cucpu::config();
  ~ConfigGuard() { cucpu::config() = saved; }
};

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
std::string L(int line) { return "test_cucpu_bugs.cpp:" + std::to_string(line); }

// ------------------------------------------------------------------ 1. missing barrier (read before write)
// Thread 0 computes a per-block value that everyone reads. Without the barrier the fixed order happens to
// run thread 0 first (right answer); random order runs readers first and they see a stale value.
template <bool kBarrier>
__global__ void broadcast_kernel(int* out) {
  __shared__ int s_val;
  if (threadIdx.x == 0) s_val = 1000 + (int)blockIdx.x;
  if (kBarrier) __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s_val;
}

int count_wrong_broadcast(bool barrier, int blocks, int threads) {
  int* d = dev_alloc<int>(blocks * threads);
  if (barrier)
    launch_kernel(broadcast_kernel<true>, blocks, threads, 0, 0, d);
  else
    launch_kernel(broadcast_kernel<false>, blocks, threads, 0, 0, d);
  auto h = to_host(d, blocks * threads);
  CUDA_CHECK(cudaFree(d));
  int wrong = 0;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) wrong += h[b * threads + t] != 1000 + b;
  return wrong;
}

TEST(CucpuPlantedBugs, MissingBarrierCaughtInRandomOrder) {
  SKIP_UNDER_TSAN();
  ConfigGuard g;
  cucpu::config().shuffle = false;
  EXPECT_EQ(count_wrong_broadcast(false, 4, 256), 0) << "fixed order is expected to miss this bug";
  for (uint64_t seed : {1, 2, 3}) {
    cucpu::config().shuffle = true;
    cucpu::config().seed = seed;
    int wrong = count_wrong_broadcast(false, 4, 256);
    EXPECT_GT(wrong, 0) << "seed " << seed << " did not expose the missing barrier";
    EXPECT_EQ(count_wrong_broadcast(false, 4, 256), wrong) << "random order must be deterministic per seed";
    EXPECT_EQ(count_wrong_broadcast(true, 4, 256), 0) << "correct twin, seed " << seed;
  }
}

// ------------------------------------------------------------------ 2. tree reduction without the inner barrier
// (write-after-read between warps: caught even in the fixed warp run-ahead order)
template <bool kBarrier>
__global__ void tree_sum_kernel(float* out, const float* in) {
  __shared__ float s[256];
  int t = threadIdx.x;
  s[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    if (kBarrier) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

TEST(CucpuPlantedBugs, TreeReductionWithoutInnerBarrierGivesWrongSums) {
  SKIP_UNDER_TSAN();
  ConfigGuard g;
  const int blocks = 3, n = 256;
  std::vector<float> h(blocks * n);
  for (size_t k = 0; k < h.size(); ++k) h[k] = (float)(k % 7);
  float* din = dev_alloc<float>(h.size());
  float* dout = dev_alloc<float>(blocks);
  CUDA_CHECK(cudaMemcpy(din, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  for (int seed = 0; seed <= 3; ++seed) {
    cucpu::config().shuffle = seed > 0;
    cucpu::config().seed = seed;
    launch_kernel(tree_sum_kernel<true>, blocks, n, 0, 0, dout, din);
    auto good = to_host(dout, blocks);
    launch_kernel(tree_sum_kernel<false>, blocks, n, 0, 0, dout, din);
    auto bad = to_host(dout, blocks);
    int wrong = 0;
    for (int b = 0; b < blocks; ++b) {
      float ref = 0;
      for (int t = 0; t < n; ++t) ref += h[b * n + t];
      EXPECT_EQ(good[b], ref);
      wrong += bad[b] != ref;
    }
    EXPECT_GT(wrong, 0) << "seed " << seed;
  }
}

// ------------------------------------------------------------------ 3. divergent __syncthreads
constexpr int kDivA = __LINE__ + 4;
constexpr int kDivB = __LINE__ + 6;
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 64) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    __syncthreads();
    out[threadIdx.x] = 2;
  }
}

TEST(CucpuPlantedBugsDeathTest, DivergentBarrierNamesBothLines) {
  int* d = dev_alloc<int>(256);
  EXPECT_DEATH(launch_kernel(divergent_barrier_kernel, 2, 256, 0, 0, d),
               "kernel 'divergent_barrier_kernel'.*divergent __syncthreads: thread \\(0,0,0\\) waits at .*" + L(kDivA) +
                   " while thread \\(64,0,0\\) waits at .*" + L(kDivB));
}

// ------------------------------------------------------------------ 4. threads exit while others wait at a barrier
constexpr int kExitBar = __LINE__ + 4;
__global__ void exited_at_barrier_kernel(float* out) {
  if (threadIdx.x >= 64) return;  // early exit...
  out[threadIdx.x] = 1.f;
  __syncthreads();  // ...then a barrier the exited threads never reach
  out[threadIdx.x] += 1.f;
}

TEST(CucpuPlantedBugsDeathTest, ExitedThreadsAtBarrier) {
  float* d = dev_alloc<float>(128);
  EXPECT_DEATH(launch_kernel(exited_at_barrier_kernel, 1, 128, 0, 0, d),
               "kernel 'exited_at_barrier_kernel'.*64 thread\\(s\\) exited .* while 64 others wait at "
               "__syncthreads \\(.*" + L(kExitBar) + "\\)");
}

TEST(CucpuPlantedBugs, ExitedThreadsAllowedWhenNotStrict) {
  ConfigGuard g;
  cucpu::config().strict = false;  // CUCPU_STRICT=0: exited threads count as arrived (Volta+ hardware behaviour)
  float* d = dev_alloc<float>(128);
  launch_kernel(exited_at_barrier_kernel, 1, 128, 0, 0, d);
  auto h = to_host(d, 128);
  EXPECT_EQ(h[0], 2.f);
  EXPECT_EQ(h[63], 2.f);
  EXPECT_TRUE(h[64] != h[64]);  // never written: still the NaN poison
}

// ------------------------------------------------------------------ 5. shuffles with a missing lane
constexpr int kShflMissing = __LINE__ + 4;
__global__ void shuffle_missing_lane_kernel(float* out) {
  float v = (float)threadIdx.x;
  int lane = threadIdx.x % 32;
  if (lane < 31) v += __shfl_down_sync(0xffffffffu, v, 1);  // lane 31 skips a full-mask shuffle
  out[threadIdx.x] = v;
}

TEST(CucpuPlantedBugsDeathTest, ShuffleWithExitedLane) {
  float* d = dev_alloc<float>(32);
  EXPECT_DEATH(launch_kernel(shuffle_missing_lane_kernel, 1, 32, 0, 0, d),
               // whichever comes first in the (possibly random) lane order: the exit or the shuffle
               "kernel 'shuffle_missing_lane_kernel'.*(lane 31\\) exited while lane [0-9]+ waits at __shfl_down_sync "
               "\\(.*" + L(kShflMissing) + "\\)|__shfl_down_sync \\(.*" + L(kShflMissing) +
                   "\\) mask 0xffffffff names lanes that have exited \\(0x80000000\\))");
}

constexpr int kShflOutside = __LINE__ + 4;
__global__ void shuffle_reads_outside_mask_kernel(int* out) {
  int lane = threadIdx.x % 32;
  if (lane < 16) {
    out[lane] = __shfl_sync(0x0000ffffu, lane, 20);  // lane 20 is not in the mask
  }
}

TEST(CucpuPlantedBugsDeathTest, ShuffleReadsLaneOutsideMask) {
  int* d = dev_alloc<int>(32);
  EXPECT_DEATH(launch_kernel(shuffle_reads_outside_mask_kernel, 1, 32, 0, 0, d),
               "reads lane 20, which is not in mask 0x0000ffff.*|__shfl_sync \\(.*" + L(kShflOutside));
}

__global__ void partial_warp_full_mask_kernel(int* out) {
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);  // block of 48: lanes 16..31 missing
}

TEST(CucpuPlantedBugsDeathTest, FullMaskInPartialWarp) {
  int* d = dev_alloc<int>(48);
  EXPECT_DEATH(launch_kernel(partial_warp_full_mask_kernel, 1, 48, 0, 0, d),
               "mask 0xffffffff names lanes that do not exist \\(warp 1 has lanes 0x0000ffff\\)");
}

// ------------------------------------------------------------------ 6. deadlock: warp op vs block barrier
__global__ void deadlock_kernel(int* out) {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    __syncwarp();
  }
  out[threadIdx.x] = 1;
}

TEST(CucpuPlantedBugsDeathTest, DeadlockIsReported) {
  int* d = dev_alloc<int>(32);
  EXPECT_DEATH(launch_kernel(deadlock_kernel, 1, 32, 0, 0, d),
               "kernel 'deadlock_kernel'.*deadlock: lanes 0xfffffffe of warp 0 wait at __syncwarp");
}

// ------------------------------------------------------------------ 7. launch configurations CUDA rejects
__global__ void trivial_kernel(int* out) { out[threadIdx.x] = 1; }

TEST(CucpuPlantedBugsDeathTest, BlockLargerThan1024) {
  int* d = dev_alloc<int>(2048);
  EXPECT_DEATH(launch_kernel(trivial_kernel, 1, 1056, 0, 0, d), "kernel 'trivial_kernel'.*invalid block size");
  EXPECT_DEATH(launch_kernel(trivial_kernel, 1, dim3(32, 1, 65), 0, 0, d), "invalid block size");
  EXPECT_DEATH(launch_kernel(trivial_kernel, 0, 32, 0, 0, d), "invalid grid size");
  launch_kernel(trivial_kernel, 1, 1024, 0, 0, d);  // the largest legal block runs
  EXPECT_EQ(to_host(d, 1024)[1023], 1);
}

__global__ void big_smem_kernel(float* out) {
  DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = 1.f;
  out[threadIdx.x] = s[threadIdx.x];
}

TEST(CucpuPlantedBugsDeathTest, DynamicSharedMemoryOver48KiBNeedsOptIn) {
  float* d = dev_alloc<float>(32);
  EXPECT_DEATH(launch_kernel(big_smem_kernel, 1, 32, 64 * 1024, 0, d),
               "dynamic shared memory of 65536 bytes exceeds the kernel's limit of 49152 bytes");
  CUDA_CHECK(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
  launch_kernel(big_smem_kernel, 1, 32, 64 * 1024, 0, d);
  EXPECT_EQ(to_host(d, 32)[31], 1.f);
}

// ------------------------------------------------------------------ 8. a hanging kernel and the watchdog
__global__ void spin_kernel(const int* flag) {
  while (*(volatile const int*)flag == 0) {
  }
}

TEST(CucpuPlantedBugsDeathTest, WatchdogNamesHangingKernel) {
  ConfigGuard g;
  cucpu::config().watchdog_s = 0.3;
  int* flag = dev_alloc<int>(1);
  CUDA_CHECK(cudaMemset(flag, 0, sizeof(int)));
  EXPECT_DEATH(launch_kernel(spin_kernel, 2, 64, 0, 0, flag),
               "watchdog: kernel 'spin_kernel' \\(launched at .*test_cucpu_bugs.cpp:[0-9]+\\) still running after "
               "0.3 s");
  CUDA_CHECK(cudaMemset(flag, 1, sizeof(int)));
  launch_kernel(spin_kernel, 2, 64, 0, 0, flag);  // the same kernel finishes when the flag is set
}

}  // namespace

// ------------------------------------------------------------------ 8b. fiber stack overflow
__device__ int deep(volatile char* prev, int depth) {
  volatile char frame[1024];  // 1 KiB per level: 200 levels overflow a 64 KiB fiber stack
  frame[0] = (char)depth;
  frame[1023] = prev ? prev[0] : 0;
  return depth == 0 ? frame[1023] : deep(frame, depth - 1) + frame[0];
}
__global__ void deep_recursion_kernel(int* out, int depth) { out[threadIdx.x] = deep(nullptr, depth); }

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST(CucpuPlantedBugsDeathTest, FiberStackOverflowNamesKernel) {
  ConfigGuard g;
  cucpu::config().stack_kb = 64;
  int* d = dev_alloc<int>(32);
  launch_kernel(deep_recursion_kernel, 1, 32, 0, 0, d, 10);  // 10 KiB deep: fine
  EXPECT_DEATH(launch_kernel(deep_recursion_kernel, 1, 32, 0, 0, d, 200),
               "kernel 'deep_recursion_kernel'.*thread \\([0-9]+,0,0\\) overflowed its 64 KiB fiber stack");
}
#endif

// ------------------------------------------------------------------ 9. sanitizer builds see kernel bugs
// (these exist only in -DLLM_SANITIZE=address / thread builds: they prove the fiber annotations work)
#if defined(__SANITIZE_ADDRESS__)
namespace {
__global__ void unguarded_kernel(float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = (float)n;  // planted bug: no `if (i < n)`
}
__global__ void smem_overrun_kernel(float* out) {
  DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = 1.f;  // planted bug: launched with room for 64 floats, 128 threads
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}
}  // namespace

TEST(CucpuSanitizerDeathTest, AsanSeesOutOfBoundsDeviceMemory) {
  float* d = dev_alloc<float>(1000);
  EXPECT_DEATH(launch_kernel(unguarded_kernel, 4, 256, 0, 0, d, 1000),
               "heap-buffer-overflow(.|\n)*unguarded_kernel");
}
TEST(CucpuSanitizerDeathTest, AsanSeesDynamicSharedMemoryOverrun) {
  float* d = dev_alloc<float>(128);
  EXPECT_DEATH(launch_kernel(smem_overrun_kernel, 1, 128, 64 * sizeof(float), 0, d),
               "heap-buffer-overflow(.|\n)*smem_overrun_kernel");
}
#endif

#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_options() { return "halt_on_error=1:die_after_fork=0"; }
TEST(CucpuSanitizerDeathTest, TsanReportsMissingBarrierInFixedOrder) {
  // TSan turns itself off in a child forked from a multi-threaded process (the TSan-build watchdog is a
  // thread): re-execute the binary for the death test instead of forking
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  int* d = dev_alloc<int>(64);
  // fixed order gives the right answer (test 1), but TSan sees the unordered write and reads
  EXPECT_DEATH(launch_kernel(broadcast_kernel<false>, 1, 64, 0, 0, d),
               "data race(.|\n)*broadcast_kernel(.|\n)*test_cucpu_bugs.cpp:[0-9]+(.|\n)*cuda block \\(0,0,0\\) thread");
}
TEST(CucpuSanitizerDeathTest, TsanQuietWithBarrier) {
  int* d = dev_alloc<int>(64);
  launch_kernel(broadcast_kernel<true>, 1, 64, 0, 0, d);
  EXPECT_EQ(to_host(d, 64)[63], 1000);
}
#endif
