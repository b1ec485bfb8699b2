// cucpu_overhead.cpp — cost of the CUDA-on-CPU layer: ns per thread·barrier and ms per launch.
//
// Workload from cuda_cpu/README.md: 128 blocks x 256 threads, 11 __syncthreads per thread, compared with the
// same kernel without barriers (fiber start/exit only), plus a warp-shuffle kernel (10 __shfl_xor_sync per
// thread). Run:  build-cucpu/cucpu_overhead [reps] [threads per block]   (CUCPU_SHUFFLE=1 to time random-order mode)
#include <time.h>
#include <cstdio>
#include <cstdlib>

#include "cuda_cpu/compat.cuh"

template <int kBarriers>
__global__ void barrier_kernel(float* out) {
  __shared__ float s[256];
  float acc = 0.f;
  int t = threadIdx.x;
  for (int i = 0; i < kBarriers; ++i) {
    s[t] = acc + (float)i;
    __syncthreads();
    acc += s[(t + 1) % blockDim.x];
  }
  out[blockIdx.x * blockDim.x + t] = acc;
}

__global__ void shuffle_kernel(float* out) {
  float v = (float)threadIdx.x;
  for (int i = 0; i < 10; ++i) v += __shfl_xor_sync(0xffffffffu, v, 1 << (i % 5));
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

// Process CPU time, not wall time: the 2-core CI machine is shared, and wall time would count other jobs.
static double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

template <class F>
double time_ms(int reps, F f) {
  f();  // warm-up: stacks are mapped and touched on the first launch
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {  // best of reps: the least disturbed run
    double t0 = cpu_ms();
    f();
    double t = cpu_ms() - t0;
    best = t < best ? t : best;
  }
  return best;
}

int main(int argc, char** argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  if (reps < 1) reps = 1;
  const int threads = argc > 2 ? atoi(argv[2]) : 256;  // 32..256; the grid keeps 32768 threads in total
  if (threads < 32 || threads > 256 || threads % 32) return 2;
  const int blocks = 32768 / threads, n = blocks * threads;
  float* out = nullptr;
  CUDA_CHECK(cudaMalloc(&out, n * sizeof(float)));
  double t0 = time_ms(reps, [&] { launch_kernel(barrier_kernel<0>, blocks, threads, 0, 0, out); });
  double t11 = time_ms(reps, [&] { launch_kernel(barrier_kernel<11>, blocks, threads, 0, 0, out); });
  double ts = time_ms(reps, [&] { launch_kernel(shuffle_kernel, blocks, threads, 0, 0, out); });
  printf("cucpu overhead (%d blocks x %d threads, best of %d, CPU time%s)\n", blocks, threads, reps,
         cucpu::config().shuffle ? ", random order" : "");
  printf("  no-barrier launch        %8.3f ms  (%.1f ns per thread: fiber start + exit)\n", t0, t0 * 1e6 / n);
  printf("  11-barrier launch        %8.3f ms\n", t11);
  printf("  per thread-barrier       %8.1f ns  ((t11 - t0) / (threads * 11))\n", (t11 - t0) * 1e6 / (n * 11.0));
  printf("  10-shuffle launch        %8.3f ms  (%.1f ns per thread-shuffle)\n", ts, (ts - t0) * 1e6 / (n * 10.0));
  CUDA_CHECK(cudaFree(out));
  return 0;
}
