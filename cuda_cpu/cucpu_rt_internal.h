// cucpu_rt_internal.h — what the fake runtime's two halves share: memory (cucpu_rt.cpp) and streams, events,
// graphs and stream capture (cucpu_graph.cpp). Not for kernel or host code.
#pragma once
#include "cuda_cpu/cucpu.h"

namespace cucpu::rt {
cudaError_t ret(cudaError_t e);  // records e (cudaGetLastError) and returns it
// Checks a copy against the tracked allocations and the direction (cudaErrorInvalidValue etc.); copy also does it.
cudaError_t check_copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind);
cudaError_t copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind);
cudaError_t check_set(void* dst, size_t n);
cudaError_t set(void* dst, int value, size_t n);
// A side of the copy is host memory the runtime did not allocate (pageable: not cudaMallocHost/cudaHostAlloc).
bool touches_pageable(void* dst, const void* src, size_t n);
}  // namespace cucpu::rt

namespace cucpu::cap {
// cudaSuccess when a "potentially unsafe" call (cudaMalloc, cudaFree, ...) is allowed now; else the capture(s)
// that forbid it are invalidated and cudaErrorStreamCaptureUnsupported comes back (cudaStreamCaptureMode rules).
cudaError_t unsafe_call();
// cudaSuccess when the legacy default stream may be used now (synchronous memcpy/memset, stream 0); else the active
// captures are invalidated and cudaErrorStreamCaptureImplicit comes back.
cudaError_t legacy_stream_use();
// s is a stream in an active capture sequence.
bool capturing(cudaStream_t s);
}  // namespace cucpu::cap
