// test_cucpu_graph.cpp — stream capture and CUDA graphs on the CUDA-on-CPU layer (cuda_cpu/cucpu_graph.cpp):
// a captured sequence (pinned copies, memsets, kernels) does nothing at capture time, and each replay gives the
// bytes an eager run gives, reading the pinned buffers as they are at replay; what CUDA forbids during a capture
// is refused with CUDA's error code (cuda_runtime_api.h / driver_types.h) and invalidates the capture.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cuda_cpu/compat.cuh"

namespace {

// y[i] = a·x[i] + i (exact in fp32 for the small integers used here).
__global__ void axpi_kernel(float* y, const float* x, float a, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + (float)i;
}
// y[i] += y[n-1-i] of the previous kernel's output (reads other blocks' results: order matters).
__global__ void add_reversed_kernel(float* z, const float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) z[i] += y[n - 1 - i];
}

constexpr int kN = 300;

struct Buffers {
  float *x = nullptr, *y = nullptr, *z = nullptr;  // device
  float *in = nullptr, *out = nullptr;             // pinned host
  Buffers() {
    CUDA_CHECK(cudaMalloc(&x, kN * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&y, kN * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&z, kN * sizeof(float)));
    CUDA_CHECK(cudaMallocHost(&in, kN * sizeof(float)));
    CUDA_CHECK(cudaMallocHost(&out, kN * sizeof(float)));
    std::memset(out, 0x7F, kN * sizeof(float));
  }
  ~Buffers() {
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(y));
    CUDA_CHECK(cudaFree(z));
    CUDA_CHECK(cudaFreeHost(in));
    CUDA_CHECK(cudaFreeHost(out));
  }
};

// in -> x; z = 0; y = a·x + i; z += reverse(y); z -> out  (5 operations)
void issue(Buffers& b, float a, cudaStream_t s) {
  CUDA_CHECK(cudaMemcpyAsync(b.x, b.in, kN * sizeof(float), cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaMemsetAsync(b.z, 0, kN * sizeof(float), s));
  launch_kernel(axpi_kernel, dim3((kN + 127) / 128), dim3(128), 0, s, b.y, (const float*)b.x, a, kN);
  launch_kernel(add_reversed_kernel, dim3((kN + 63) / 64), dim3(64), 0, s, b.z, (const float*)b.y, kN);
  CUDA_CHECK(cudaMemcpyAsync(b.out, b.z, kN * sizeof(float), cudaMemcpyDeviceToHost, s));
}

// z[i] = a·in[n-1-i] + (n-1-i)
std::vector<float> expected(const float* in, float a) {
  std::vector<float> e(kN);
  for (int i = 0; i < kN; i++) e[i] = a * in[kN - 1 - i] + (float)(kN - 1 - i);
  return e;
}

void fill(float* in, int base) {
  for (int i = 0; i < kN; i++) in[i] = (float)((i * 7 + base) % 64);
}

struct Stream {
  cudaStream_t s = nullptr;
  explicit Stream(unsigned flags = cudaStreamNonBlocking) { CUDA_CHECK(cudaStreamCreateWithFlags(&s, flags)); }
  ~Stream() { CUDA_CHECK(cudaStreamDestroy(s)); }
};

cudaGraph_t capture(Buffers& b, float a, cudaStream_t s) {
  CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  issue(b, a, s);
  cudaGraph_t g = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(s, &g));
  return g;
}

TEST(CucpuGraph, ReplayGivesTheEagerBytesAndReadsPinnedInputsAtReplay) {
  Stream st;
  Buffers eager, graphed;
  fill(eager.in, 3);
  issue(eager, 2.0f, st.s);
  CUDA_CHECK(cudaStreamSynchronize(st.s));
  const std::vector<float> want = expected(eager.in, 2.0f);
  ASSERT_EQ(0, std::memcmp(eager.out, want.data(), kN * sizeof(float)));

  fill(graphed.in, 3);
  float a = 2.0f;
  cudaGraph_t g = capture(graphed, a, st.s);
  a = -5.0f;  // kernel arguments were taken by value at capture
  size_t nodes = 0;
  CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &nodes));
  EXPECT_EQ(nodes, 5u);
  std::vector<unsigned char> untouched(kN * sizeof(float), 0x7F);
  EXPECT_EQ(0, std::memcmp(graphed.out, untouched.data(), untouched.size())) << "capture must not execute";

  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  CUDA_CHECK(cudaGraphLaunch(exec, st.s));
  CUDA_CHECK(cudaStreamSynchronize(st.s));
  EXPECT_EQ(0, std::memcmp(graphed.out, eager.out, kN * sizeof(float)));

  // new contents of the pinned input: the replay copies what is there now
  fill(graphed.in, 11);
  fill(eager.in, 11);
  issue(eager, 2.0f, st.s);
  CUDA_CHECK(cudaGraphLaunch(exec, st.s));
  CUDA_CHECK(cudaStreamSynchronize(st.s));
  const std::vector<float> want2 = expected(eager.in, 2.0f);
  EXPECT_EQ(0, std::memcmp(eager.out, want2.data(), kN * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(graphed.out, eager.out, kN * sizeof(float)));
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(g));
}

// Begins a capture on s with one recorded operation, runs `forbidden`, and returns its error and the end's.
template <class F>
std::pair<cudaError_t, cudaError_t> during_capture(cudaStream_t s, Buffers& b, F forbidden,
                                                   cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal) {
  EXPECT_EQ(cudaStreamBeginCapture(s, mode), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(b.y, 0, kN * sizeof(float), s), cudaSuccess);
  const cudaError_t e = forbidden();
  cudaGraph_t g = nullptr;
  const cudaError_t end = cudaStreamEndCapture(s, &g);
  if (end == cudaSuccess) EXPECT_NE(g, nullptr);
  else EXPECT_EQ(g, nullptr);
  if (g) CUDA_CHECK(cudaGraphDestroy(g));
  (void)cudaGetLastError();
  return {e, end};
}

TEST(CucpuGraph, SynchronisationsInsideACaptureAreRefused) {
  Stream st;
  Buffers b;
  auto r = during_capture(st.s, b, [&] { return cudaStreamSynchronize(st.s); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);
  r = during_capture(st.s, b, [&] { return cudaStreamQuery(st.s); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);
  r = during_capture(st.s, b, [&] { return cudaDeviceSynchronize(); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);
  // the device loss readback done right: async into pinned memory, read after the replay
  r = during_capture(st.s, b, [&] {
    return cudaMemcpyAsync(b.out, b.y, kN * sizeof(float), cudaMemcpyDeviceToHost, st.s);
  });
  EXPECT_EQ(r.first, cudaSuccess);
  EXPECT_EQ(r.second, cudaSuccess);
  // a stream outside the capture may still be synchronised
  Stream other;
  r = during_capture(st.s, b, [&] { return cudaStreamSynchronize(other.s); });
  EXPECT_EQ(r.first, cudaSuccess);
  EXPECT_EQ(r.second, cudaSuccess);
}

TEST(CucpuGraph, PageableCopiesInsideACaptureAreRefused) {
  Stream st;
  Buffers b;
  std::vector<float> pageable(kN, 1.0f);
  auto r = during_capture(st.s, b, [&] {
    return cudaMemcpyAsync(b.x, pageable.data(), kN * sizeof(float), cudaMemcpyHostToDevice, st.s);
  });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);
  r = during_capture(st.s, b, [&] {
    return cudaMemcpyAsync(pageable.data(), b.x, kN * sizeof(float), cudaMemcpyDeviceToHost, st.s);
  });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  // outside a capture the same copy is fine
  EXPECT_EQ(cudaMemcpyAsync(b.x, pageable.data(), kN * sizeof(float), cudaMemcpyHostToDevice, st.s), cudaSuccess);
}

TEST(CucpuGraph, TheLegacyStreamDuringACaptureIsRefused) {
  Stream st;
  Buffers b;
  std::vector<float> h(kN);
  auto r = during_capture(st.s, b, [&] { return cudaMemcpy(h.data(), b.x, kN * sizeof(float), cudaMemcpyDeviceToHost); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureImplicit);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);
  r = during_capture(st.s, b, [&] { return cudaMemset(b.x, 0, kN * sizeof(float)); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureImplicit);
  r = during_capture(st.s, b, [&] { return cudaMemsetAsync(b.x, 0, kN * sizeof(float), 0); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureImplicit);
  r = during_capture(st.s, b, [&] {
    cudaStreamCaptureStatus status;
    return cudaStreamIsCapturing(0, &status);
  });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureImplicit);
  r = during_capture(st.s, b, [&] { return cudaStreamSynchronize(cudaStreamLegacy); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureImplicit);
  EXPECT_EQ(cudaStreamBeginCapture(0, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported);
  (void)cudaGetLastError();
}

TEST(CucpuGraph, AKernelOnTheLegacyStreamDuringACaptureAborts) {
  Stream st;
  Buffers b;
  EXPECT_DEATH(
      {
        CUDA_CHECK(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal));
        launch_kernel(axpi_kernel, dim3(3), dim3(128), 0, 0, b.y, (const float*)b.x, 1.0f, kN);
      },
      "launch_kernel\\(axpi_kernel.*cudaErrorStreamCaptureImplicit");
}

TEST(CucpuGraph, AllocationsFollowTheCaptureMode) {
  Stream st;
  Buffers b;
  void* p = nullptr;
  auto r = during_capture(st.s, b, [&] { return cudaMalloc(&p, 64); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);
  r = during_capture(st.s, b, [&] { return cudaMallocHost(&p, 64); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureUnsupported);
  r = during_capture(st.s, b, [&] { return cudaMalloc(&p, 64); }, cudaStreamCaptureModeRelaxed);
  EXPECT_EQ(r.first, cudaSuccess);
  EXPECT_EQ(r.second, cudaSuccess);
  CUDA_CHECK(cudaFree(p));
  // a thread whose own mode is Relaxed (cudaThreadExchangeStreamCaptureMode) may make unsafe calls during a capture
  r = during_capture(st.s, b, [&] {
    cudaStreamCaptureMode m = cudaStreamCaptureModeRelaxed;
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&m));
    const cudaError_t e = cudaMalloc(&p, 64);
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&m));
    return e;
  });
  EXPECT_EQ(r.first, cudaSuccess);
  CUDA_CHECK(cudaFree(p));
}

TEST(CucpuGraph, EventsForkAndJoinOtherStreams) {
  Stream st, side;
  Buffers b;
  cudaEvent_t fork_ev, join_ev, outside;
  CUDA_CHECK(cudaEventCreateWithFlags(&fork_ev, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&join_ev, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&outside, cudaEventDisableTiming));
  fill(b.in, 5);

  // fork: side joins; its work lands in the graph in call order; join back before the end
  CUDA_CHECK(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal));
  CUDA_CHECK(cudaMemcpyAsync(b.x, b.in, kN * sizeof(float), cudaMemcpyHostToDevice, st.s));
  CUDA_CHECK(cudaEventRecord(fork_ev, st.s));
  CUDA_CHECK(cudaStreamWaitEvent(side.s, fork_ev, 0));
  cudaStreamCaptureStatus status;
  CUDA_CHECK(cudaStreamIsCapturing(side.s, &status));
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  EXPECT_EQ(cudaEventSynchronize(fork_ev), cudaErrorCapturedEvent);
  EXPECT_EQ(cudaEventQuery(fork_ev), cudaErrorCapturedEvent);
  CUDA_CHECK(cudaMemsetAsync(b.z, 0, kN * sizeof(float), side.s));
  launch_kernel(axpi_kernel, dim3(3), dim3(128), 0, side.s, b.y, (const float*)b.x, 3.0f, kN);
  CUDA_CHECK(cudaEventRecord(join_ev, side.s));
  CUDA_CHECK(cudaStreamWaitEvent(st.s, join_ev, 0));
  launch_kernel(add_reversed_kernel, dim3(5), dim3(64), 0, st.s, b.z, (const float*)b.y, kN);
  CUDA_CHECK(cudaMemcpyAsync(b.out, b.z, kN * sizeof(float), cudaMemcpyDeviceToHost, st.s));
  cudaGraph_t g = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(st.s, &g), cudaSuccess);
  CUDA_CHECK(cudaStreamIsCapturing(side.s, &status));
  EXPECT_EQ(status, cudaStreamCaptureStatusNone);
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  CUDA_CHECK(cudaGraphLaunch(exec, st.s));
  CUDA_CHECK(cudaStreamSynchronize(st.s));
  const std::vector<float> want = expected(b.in, 3.0f);
  EXPECT_EQ(0, std::memcmp(b.out, want.data(), kN * sizeof(float)));
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(g));

  // a fork that never joins back
  CUDA_CHECK(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal));
  CUDA_CHECK(cudaEventRecord(fork_ev, st.s));
  CUDA_CHECK(cudaStreamWaitEvent(side.s, fork_ev, 0));
  CUDA_CHECK(cudaMemsetAsync(b.z, 0, kN * sizeof(float), side.s));
  EXPECT_EQ(cudaStreamEndCapture(side.s, &g), cudaErrorStreamCaptureUnmatched);
  EXPECT_EQ(cudaStreamEndCapture(st.s, &g), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(g, nullptr);
  CUDA_CHECK(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal));
  CUDA_CHECK(cudaEventRecord(fork_ev, st.s));
  CUDA_CHECK(cudaStreamWaitEvent(side.s, fork_ev, 0));
  CUDA_CHECK(cudaMemsetAsync(b.z, 0, kN * sizeof(float), side.s));
  EXPECT_EQ(cudaStreamEndCapture(st.s, &g), cudaErrorStreamCaptureUnjoined);
  EXPECT_EQ(g, nullptr);

  // waiting on an event recorded outside the capture crosses its boundary
  CUDA_CHECK(cudaEventRecord(outside, side.s));
  auto r = during_capture(st.s, b, [&] { return cudaStreamWaitEvent(st.s, outside, 0); });
  EXPECT_EQ(r.first, cudaErrorStreamCaptureIsolation);
  EXPECT_EQ(r.second, cudaErrorStreamCaptureInvalidated);

  // ending what is not capturing, beginning twice
  EXPECT_EQ(cudaStreamEndCapture(st.s, &g), cudaErrorIllegalState);
  CUDA_CHECK(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal));
  EXPECT_EQ(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal), cudaErrorIllegalState);
  CUDA_CHECK(cudaStreamEndCapture(st.s, &g));
  size_t nodes = 1;
  CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &nodes));
  EXPECT_EQ(nodes, 0u);
  CUDA_CHECK(cudaGraphDestroy(g));
  (void)cudaGetLastError();
  CUDA_CHECK(cudaEventDestroy(fork_ev));
  CUDA_CHECK(cudaEventDestroy(join_ev));
  CUDA_CHECK(cudaEventDestroy(outside));
}

TEST(CucpuGraph, AGraphLaunchedIntoACaptureIsRecordedAgain) {
  Stream st;
  Buffers b;
  fill(b.in, 9);
  cudaGraph_t inner = capture(b, 4.0f, st.s);
  cudaGraphExec_t inner_exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&inner_exec, inner, 0));
  CUDA_CHECK(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal));
  CUDA_CHECK(cudaGraphLaunch(inner_exec, st.s));
  cudaGraph_t outer = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(st.s, &outer));
  size_t nodes = 0;
  CUDA_CHECK(cudaGraphGetNodes(outer, nullptr, &nodes));
  EXPECT_EQ(nodes, 5u);
  std::vector<unsigned char> untouched(kN * sizeof(float), 0x7F);
  EXPECT_EQ(0, std::memcmp(b.out, untouched.data(), untouched.size()));
  cudaGraphExec_t outer_exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&outer_exec, outer, 0));
  CUDA_CHECK(cudaGraphLaunch(outer_exec, st.s));
  const std::vector<float> want = expected(b.in, 4.0f);
  EXPECT_EQ(0, std::memcmp(b.out, want.data(), kN * sizeof(float)));
  CUDA_CHECK(cudaGraphExecDestroy(outer_exec));
  CUDA_CHECK(cudaGraphExecDestroy(inner_exec));
  CUDA_CHECK(cudaGraphDestroy(outer));
  CUDA_CHECK(cudaGraphDestroy(inner));
}

}  // namespace
