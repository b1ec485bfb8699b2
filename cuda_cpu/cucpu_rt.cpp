// cucpu_rt.cpp — a small fake libcudart for CPU builds (exact CUDA 13 signatures from cuda_runtime_api.h).
//
// Why: host code around the kernels (tests, dev/ benchmarks, the trainer's CPU build) calls the runtime API;
// the real libcudart fails without a GPU. Here "device" memory is host memory:
//   cudaMalloc     posix_memalign(256) of exactly the requested size, filled with 0xFF (uninitialised reads
//                  are NaN in fp32 and bf16; ASan sees every overrun). Allocations are tracked, so copies and
//                  memsets outside an allocation or in the wrong direction fail with cudaErrorInvalidValue.
//   streams/events/graphs  cucpu_graph.cpp (work runs at once unless the stream is being captured).
//   device         one device, "cucpu", compute capability 8.0, 4 SMs, 1024 threads/block, 48 KiB smem/block.
// Extend it when host code needs more (keep the exact signatures).
#include "cuda_cpu/cucpu_rt_internal.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace cucpu {
std::map<const void*, int>& smem_optin();  // cucpu_sched.cpp
}

namespace {

enum class Kind { Device, Host, Managed };
struct Alloc {
  size_t size;
  Kind kind;
};

std::mutex g_mu;
std::map<uintptr_t, Alloc>& allocs() {
  static std::map<uintptr_t, Alloc> m;
  return m;
}
thread_local cudaError_t g_last = cudaSuccess;
using cucpu::rt::ret;

// The allocation that holds [p, p+n), or nullptr.
const Alloc* find(const void* p, size_t n, Kind* kind_out = nullptr) {
  std::lock_guard<std::mutex> lk(g_mu);
  auto& m = allocs();
  uintptr_t a = (uintptr_t)p;
  auto it = m.upper_bound(a);
  if (it == m.begin()) return nullptr;
  --it;
  if (a < it->first || a + n > it->first + it->second.size) return nullptr;
  if (kind_out) *kind_out = it->second.kind;
  return &it->second;
}

cudaError_t alloc(void** p, size_t size, Kind kind) {
  if (!p) return ret(cudaErrorInvalidValue);
  if (cudaError_t e = cucpu::cap::unsafe_call()) return ret(e);
  *p = nullptr;
  if (size == 0) return cudaSuccess;
  void* q = nullptr;
  if (posix_memalign(&q, 256, size) != 0 || !q) return ret(cudaErrorMemoryAllocation);
  memset(q, 0xFF, size);
  std::lock_guard<std::mutex> lk(g_mu);
  allocs()[(uintptr_t)q] = Alloc{size, kind};
  *p = q;
  return cudaSuccess;
}

cudaError_t release(void* p, bool host) {
  if (!p) return cudaSuccess;
  if (cudaError_t e = cucpu::cap::unsafe_call()) return ret(e);
  std::lock_guard<std::mutex> lk(g_mu);
  auto it = allocs().find((uintptr_t)p);
  if (it == allocs().end() || (it->second.kind == Kind::Host) != host) return ret(cudaErrorInvalidValue);
  allocs().erase(it);
  free(p);
  return cudaSuccess;
}

bool is_dev(const void* p, size_t n) {
  Kind k;
  return find(p, n, &k) && k != Kind::Host;
}

// A host range must not overlap device memory (catches swapped arguments).
bool is_host(const void* p, size_t n) {
  Kind k;
  const Alloc* a = find(p, n ? 1 : 0, &k);
  (void)n;
  return !a || k != Kind::Device;
}

}  // namespace

namespace cucpu::rt {
cudaError_t ret(cudaError_t e) {
  if (e != cudaSuccess) g_last = e;
  return e;
}

cudaError_t check_copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return ret(cudaErrorInvalidValue);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToHost: ok = is_host(dst, n) && is_host(src, n); break;
    case cudaMemcpyHostToDevice: ok = is_dev(dst, n) && is_host(src, n); break;
    case cudaMemcpyDeviceToHost: ok = is_host(dst, n) && is_dev(src, n); break;
    case cudaMemcpyDeviceToDevice: ok = is_dev(dst, n) && is_dev(src, n); break;
    case cudaMemcpyDefault: break;
    default: return ret(cudaErrorInvalidMemcpyDirection);
  }
  return ok ? cudaSuccess : ret(cudaErrorInvalidValue);
}

cudaError_t copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  const cudaError_t e = check_copy(dst, src, n, kind);
  if (e == cudaSuccess && n) memmove(dst, src, n);
  return e;
}

cudaError_t check_set(void* dst, size_t n) { return n == 0 || is_dev(dst, n) ? cudaSuccess : ret(cudaErrorInvalidValue); }

cudaError_t set(void* dst, int value, size_t n) {
  const cudaError_t e = check_set(dst, n);
  if (e == cudaSuccess && n) memset(dst, value, n);
  return e;
}

bool pinned_or_device(const void* p, size_t n) { return find(p, n) != nullptr; }

bool touches_pageable(void* dst, const void* src, size_t n) {
  return n && (!pinned_or_device(dst, n) || !pinned_or_device(src, n));
}
}  // namespace cucpu::rt

namespace {
using cucpu::rt::copy;

cudaDeviceProp make_props() {
  cudaDeviceProp p;
  memset(&p, 0, sizeof p);
  snprintf(p.name, sizeof p.name, "cucpu (CUDA on CPU)");
  p.totalGlobalMem = 8ull << 30;
  p.sharedMemPerBlock = 48 * 1024;
  p.sharedMemPerBlockOptin = 163 * 1024;
  p.sharedMemPerMultiprocessor = 164 * 1024;
  p.reservedSharedMemPerBlock = 1024;
  p.regsPerBlock = 65536;
  p.regsPerMultiprocessor = 65536;
  p.warpSize = 32;
  p.memPitch = 2147483647;
  p.maxThreadsPerBlock = 1024;
  p.maxThreadsDim[0] = 1024;
  p.maxThreadsDim[1] = 1024;
  p.maxThreadsDim[2] = 64;
  p.maxGridSize[0] = 2147483647;
  p.maxGridSize[1] = 65535;
  p.maxGridSize[2] = 65535;
  p.totalConstMem = 65536;
  p.major = 8;
  p.minor = 0;
  p.multiProcessorCount = 4;
  p.maxThreadsPerMultiProcessor = 2048;
  p.maxBlocksPerMultiProcessor = 32;
  p.l2CacheSize = 4 << 20;
  p.memoryBusWidth = 256;
  p.concurrentKernels = 1;
  p.asyncEngineCount = 1;
  p.unifiedAddressing = 1;
  p.managedMemory = 1;
  p.cooperativeLaunch = 0;
  p.globalL1CacheSupported = 1;
  p.localL1CacheSupported = 1;
  p.streamPrioritiesSupported = 1;
  p.memoryPoolsSupported = 1;
  return p;
}

const cudaDeviceProp& props() {
  static cudaDeviceProp p = make_props();
  return p;
}

}  // namespace

extern "C" {

cudaError_t cudaMalloc(void** devPtr, size_t size) { return alloc(devPtr, size, Kind::Device); }
cudaError_t cudaMallocManaged(void** devPtr, size_t size, unsigned int) { return alloc(devPtr, size, Kind::Managed); }
cudaError_t cudaMallocAsync(void** devPtr, size_t size, cudaStream_t s) {  // stream-ordered: not capturable here
  if (cucpu::cap::capturing(s)) return ret(cudaErrorStreamCaptureUnsupported);
  return alloc(devPtr, size, Kind::Device);
}
cudaError_t cudaMallocHost(void** ptr, size_t size) { return alloc(ptr, size, Kind::Host); }
cudaError_t cudaHostAlloc(void** pHost, size_t size, unsigned int) { return alloc(pHost, size, Kind::Host); }
cudaError_t cudaFree(void* devPtr) { return release(devPtr, false); }
cudaError_t cudaFreeAsync(void* devPtr, cudaStream_t s) {
  if (cucpu::cap::capturing(s)) return ret(cudaErrorStreamCaptureUnsupported);
  return release(devPtr, false);
}
cudaError_t cudaFreeHost(void* ptr) { return release(ptr, true); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  if (cudaError_t e = cucpu::cap::legacy_stream_use()) return ret(e);
  return copy(dst, src, count, kind);
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         enum cudaMemcpyKind kind) {
  if (width > dpitch || width > spitch) return ret(cudaErrorInvalidValue);
  if (cudaError_t e = cucpu::cap::legacy_stream_use()) return ret(e);
  for (size_t r = 0; r < height; ++r) {
    cudaError_t e = copy((char*)dst + r * dpitch, (const char*)src + r * spitch, width, kind);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}
cudaError_t cudaMemcpyToSymbol(const void* symbol, const void* src, size_t count, size_t offset,
                               enum cudaMemcpyKind) {
  if (!symbol || (!src && count)) return ret(cudaErrorInvalidValue);
  if (cudaError_t e = cucpu::cap::legacy_stream_use()) return ret(e);
  memcpy((char*)symbol + offset, src, count);  // __constant__/__device__ globals are plain host globals here
  return cudaSuccess;
}
cudaError_t cudaMemcpyFromSymbol(void* dst, const void* symbol, size_t count, size_t offset, enum cudaMemcpyKind) {
  if (!symbol || (!dst && count)) return ret(cudaErrorInvalidValue);
  if (cudaError_t e = cucpu::cap::legacy_stream_use()) return ret(e);
  memcpy(dst, (const char*)symbol + offset, count);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* devPtr, int value, size_t count) {
  if (cudaError_t e = cucpu::cap::legacy_stream_use()) return ret(e);
  return cucpu::rt::set(devPtr, value, count);
}
cudaError_t cudaMemGetInfo(size_t* free_, size_t* total) {
  size_t used = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    for (auto& kv : allocs())
      if (kv.second.kind != Kind::Host) used += kv.second.size;
  }
  if (total) *total = props().totalGlobalMem;
  if (free_) *free_ = used < props().totalGlobalMem ? props().totalGlobalMem - used : 0;
  return cudaSuccess;
}
cudaError_t cudaMemPrefetchAsync(const void*, size_t, struct cudaMemLocation, unsigned int, cudaStream_t) {
  return cudaSuccess;
}

cudaError_t cudaDeviceReset(void) { return cudaSuccess; }
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (!device) return ret(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return ret(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (!prop) return ret(cudaErrorInvalidValue);
  if (device != 0) return ret(cudaErrorInvalidDevice);
  *prop = props();
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attr, int device) {
  if (!value) return ret(cudaErrorInvalidValue);
  if (device != 0) return ret(cudaErrorInvalidDevice);
  const cudaDeviceProp& p = props();
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = (int)p.sharedMemPerMultiprocessor; break;
    case cudaDevAttrTotalConstantMemory: *value = (int)p.totalConstMem; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMaxRegistersPerBlock: *value = p.regsPerBlock; break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *value = p.regsPerMultiprocessor; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = p.maxBlocksPerMultiProcessor; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = p.memoryBusWidth; break;
    case cudaDevAttrUnifiedAddressing: *value = 1; break;
    case cudaDevAttrManagedMemory: *value = 1; break;
    case cudaDevAttrConcurrentKernels: *value = 1; break;
    case cudaDevAttrCooperativeLaunch: *value = 0; break;
    default: *value = 0; break;
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSetLimit(enum cudaLimit, size_t) { return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return ret(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return ret(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  if (!func) return ret(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > props().sharedMemPerBlockOptin) return ret(cudaErrorInvalidValue);
    cucpu::smem_optin()[func] = value;
  }
  return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes* attr, const void* func) {
  if (!attr || !func) return ret(cudaErrorInvalidValue);
  memset(attr, 0, sizeof *attr);
  attr->maxThreadsPerBlock = 1024;
  auto it = cucpu::smem_optin().find(func);
  attr->maxDynamicSharedSizeBytes = it == cucpu::smem_optin().end() ? 48 * 1024 : it->second;
  attr->ptxVersion = 80;
  attr->binaryVersion = 80;
  return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, const void* func, int blockSize,
                                                          size_t dynamicSMemSize) {
  if (!numBlocks || !func || blockSize <= 0 || blockSize > 1024) return ret(cudaErrorInvalidValue);
  int by_threads = 2048 / blockSize;
  int by_smem = dynamicSMemSize ? (int)(props().sharedMemPerMultiprocessor / dynamicSMemSize) : 32;
  int n = by_threads < by_smem ? by_threads : by_smem;
  *numBlocks = n < 32 ? n : 32;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureMerge: return "cudaErrorStreamCaptureMerge";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureUnjoined: return "cudaErrorStreamCaptureUnjoined";
    case cudaErrorStreamCaptureIsolation: return "cudaErrorStreamCaptureIsolation";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorCapturedEvent: return "cudaErrorCapturedEvent";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureMerge: return "operation would result in a merge of separate capture sequences";
    case cudaErrorStreamCaptureUnmatched: return "capture was not ended in the same stream as it began";
    case cudaErrorStreamCaptureUnjoined: return "capturing stream has unjoined work";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    default: return "unknown error";
  }
}

}  // extern "C"
