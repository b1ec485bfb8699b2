// cucpu.h — CUDA's kernel language on the CPU (g++ path of cuda_cpu/compat.cuh; never include it directly).
//
// Why: no developer or CI machine has a GPU, yet every kernel must run in CI. Each CUDA thread becomes a
// stackful fiber (Boost.Context fcontext); a block's fibers switch only at synchronisation points
// (__syncthreads, warp shuffles/votes, __syncwarp) under a warp run-ahead scheduler; blocks run one after
// another on the calling thread. Strict checks abort, naming the kernel, block and source line, on:
// divergent __syncthreads, threads exited while others wait at a barrier, deadlock, warp masks with
// missing/exited lanes, launch configurations CUDA would reject. CUCPU_SHUFFLE=<seed> randomises warp,
// lane and block order (a cheap race detector); CUCPU_WATCHDOG_S bounds each launch (default 60 s).
//
// CUDA's own host headers do most of the work under g++: __global__/__device__/__host__/__constant__
// become nothing, and dim3, uint3, float4, int4, cudaError_t and __nv_bfloat16 (with NVIDIA's host
// conversion code, round-to-nearest-even) keep their exact layouts. This header adds the device API.
#pragma once
#ifdef __CUDACC__
#error "cucpu.h is the g++ path; include cuda_cpu/compat.cuh instead"
#endif

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// Static __shared__ arrays become block-scope thread_local (implicitly static): one instance per worker
// thread, and a worker runs one block at a time, which is exactly per-block sharing. Unlike dynamic
// shared memory they are not re-poisoned between blocks (the first block sees zeros).
#undef __shared__
#define __shared__ thread_local
#define __launch_bounds__(...)

// Built-in variables, rewritten by the scheduler before each fiber switch.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace cucpu {

// Run-time settings; initialised from the environment on first use, tests may change them.
struct Config {
  bool strict = true;        // CUCPU_STRICT=0 lets exited threads count as arrived at __syncthreads
  bool shuffle = false;      // CUCPU_SHUFFLE=<seed>: random warp/lane/block order
  uint64_t seed = 0;
  double watchdog_s = 60.0;  // CUCPU_WATCHDOG_S: abort a launch that runs longer (0 = off)
  size_t stack_kb = 64;      // CUCPU_STACK_KB: fiber stack size (plus one guard page)
};
Config& config();

// Counters for dev/cucpu_overhead and tests.
struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, barrier_arrivals = 0, warp_ops = 0;
};
Stats& stats();

// Mma and Ldmatrix are the tensor-core warp collectives below (entered through mma_m16n8k16_bf16 / ldmatrix).
enum class WarpOp : int { Sync, Idx, Up, Down, Xor, Ballot, Mma, Ldmatrix };

// Device-side entry points (called from inside a fiber).
void syncthreads(const char* file, int line);
int syncthreads_reduce(int op, int pred, const char* file, int line);  // op: 0 count, 1 and, 2 or
uint64_t warp_op(WarpOp op, unsigned mask, uint64_t val, int arg, int width, const char* file, int line);
unsigned active_mask();
void* dynamic_smem();

// Tensor-core warp collectives (kernels reach them through kernels/mma.cuh). Both need all 32 lanes of a full
// warp at the same instruction and complete when the last lane arrives, like a shuffle; the last lane gathers
// every lane's registers (or row addresses) and scatters the results by the PTX ISA's fragment tables
// (groupID = lane >> 2, threadID_in_group = lane % 4):
//   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d = a·b + c. a: 4 regs of 2 bf16 (low half = the even
//   element) holding A[16][16]; b: 2 regs holding B[16][8]; c, d: 4 floats of C/D[16][8]. Products of bf16 are
//   exact in fp32; the sum is accumulated in fp32 in k order (the hardware's order is unspecified).
void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], const char* file,
                       int line);
//   ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16: lanes 8i..8i+7 give the 16-byte-aligned row addresses of
//   matrix i (i < num; the other lanes' addresses are ignored); r[i] of lane l = row l/4, b16 elements 2(l%4) and
//   2(l%4)+1 of matrix i (with trans: elements [2(l%4)][l/4] and [2(l%4)+1][l/4]).
void ldmatrix_collective(uint32_t* r, int num, bool trans, const void* row, const char* file, int line);

// cp.async: each CUDA thread keeps a queue of its issued copies, tagged with the group they belong to (groups are
// numbered by commit_group). The copy happens when cp.async.wait_group retires its group, NOT at issue, so a
// kernel that reads the destination before waiting reads the 0xFF poison of dynamic shared memory (or stale
// data). The copies run inline in the calling (kernel) code so that sanitizers see them as that thread's writes.
struct CpAsyncCopy {
  void* dst;
  const void* src;
  unsigned bytes, src_bytes;  // src_bytes < bytes: the rest is zero-filled (PTX's src-size operand)
  unsigned group;
};
struct CpAsyncQueue {
  std::vector<CpAsyncCopy> copies;  // issued, not yet retired, in issue order
  unsigned open = 0;                // the group new copies join = the number of commit_groups so far
};
CpAsyncQueue& cp_async_queue(const char* file, int line);  // the calling CUDA thread's queue (empty per block)
[[noreturn]] void device_fail(const char* file, int line, const char* what);  // abort naming kernel/thread/line
[[noreturn]] void trap(const char* file, int line);

// One launch, type-erased: body(pack) runs the kernel for the current fiber.
struct LaunchDesc {
  const char* what;  // the launch_kernel(...) argument text; the kernel name is its first argument
  const char* file;
  int line;
  const void* fn;  // kernel address (for cudaFuncSetAttribute limits)
  dim3 grid, block;
  size_t smem;
  void (*body)(const void*);
  const void* pack;
};
void run_grid(const LaunchDesc& d);
// A launch on `stream` (cucpu_graph.cpp): runs now, or, while the stream is being captured, becomes a kernel node
// of the graph (`keep` owns the argument pack, so a replay sees the arguments of the capture, as on a GPU).
// Returns what CUDA would: an error of the capture rules (legacy stream during a capture, an invalidated capture).
cudaError_t launch_on_stream(cudaStream_t stream, const LaunchDesc& d, std::shared_ptr<const void> keep);
[[noreturn]] void launch_failed(const char* file, int line, const char* what, cudaError_t e);

// Arguments are converted once to the kernel's parameter types; every fiber then calls the kernel with
// its own by-value copies (kernels that modify their parameters behave as on the GPU).
template <class... KA, class... A>
void launch_checked(const char* file, int line, const char* what, void (*k)(KA...), dim3 grid, dim3 block,
                    size_t smem, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(KA) == sizeof...(A), "launch_kernel: wrong number of kernel arguments");
  struct Pack {
    void (*k)(KA...);
    std::tuple<std::decay_t<KA>...> args;
    static void body(const void* p) {
      const Pack* pk = static_cast<const Pack*>(p);
      std::apply(pk->k, pk->args);
    }
  };
  auto pack = std::make_shared<const Pack>(Pack{k, std::tuple<std::decay_t<KA>...>(std::forward<A>(args)...)});
  const cudaError_t e = launch_on_stream(
      stream, LaunchDesc{what, file, line, reinterpret_cast<const void*>(k), grid, block, smem, &Pack::body, pack.get()},
      pack);
  if (e != cudaSuccess) launch_failed(file, line, what, e);  // under nvcc: the cudaGetLastError check aborts
}

template <class T>
struct ident { using type = T; };

template <class To, class From>
inline To bits_as(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "size mismatch");
  To t;
  std::memcpy((void*)&t, (const void*)&f, sizeof(To));
  return t;
}

template <class T>
inline uint64_t to_u64(const T& v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffle of a type over 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, (const void*)&v, sizeof(T));
  return b;
}
template <class T>
inline T from_u64(uint64_t b) {
  T v;
  std::memcpy((void*)&v, &b, sizeof(T));
  return v;
}

}  // namespace cucpu

// C++ conveniences of cuda_runtime.h that it only declares for nvcc (#if __CUDACC__).
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
template <class T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* entry) {
  return ::cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(entry));
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T& symbol, const void* src, size_t count, size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
  return ::cudaMemcpyToSymbol((const void*)&symbol, src, count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t count, size_t offset = 0,
                                        cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
  return ::cudaMemcpyFromSymbol(dst, (const void*)&symbol, count, offset, kind);
}

// dynamic shared memory: DYNAMIC_SHARED(float, smem);  (fresh 0xFF poison for every block)
#define DYNAMIC_SHARED(T, name) T* const name = static_cast<T*>(::cucpu::dynamic_smem())

// ------------------------------------------------------------------ barriers and warp operations
// Source locations come in as default arguments so that messages name the calling line.
#define CUCPU_LOC const char *cucpu_file_ = __builtin_FILE(), int cucpu_line_ = __builtin_LINE()
#define CUCPU_AT cucpu_file_, cucpu_line_

inline void __syncthreads(CUCPU_LOC) { cucpu::syncthreads(CUCPU_AT); }
inline int __syncthreads_count(int pred, CUCPU_LOC) { return cucpu::syncthreads_reduce(0, pred, CUCPU_AT); }
inline int __syncthreads_and(int pred, CUCPU_LOC) { return cucpu::syncthreads_reduce(1, pred, CUCPU_AT); }
inline int __syncthreads_or(int pred, CUCPU_LOC) { return cucpu::syncthreads_reduce(2, pred, CUCPU_AT); }
inline void __syncwarp(unsigned mask = 0xffffffffu, CUCPU_LOC) {
  cucpu::warp_op(cucpu::WarpOp::Sync, mask, 0, 0, 32, CUCPU_AT);
}
inline unsigned __activemask() { return cucpu::active_mask(); }

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize, CUCPU_LOC) {
  return cucpu::from_u64<T>(cucpu::warp_op(cucpu::WarpOp::Idx, mask, cucpu::to_u64(var), srcLane, width, CUCPU_AT));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUCPU_LOC) {
  return cucpu::from_u64<T>(
      cucpu::warp_op(cucpu::WarpOp::Up, mask, cucpu::to_u64(var), (int)delta, width, CUCPU_AT));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUCPU_LOC) {
  return cucpu::from_u64<T>(
      cucpu::warp_op(cucpu::WarpOp::Down, mask, cucpu::to_u64(var), (int)delta, width, CUCPU_AT));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize, CUCPU_LOC) {
  return cucpu::from_u64<T>(cucpu::warp_op(cucpu::WarpOp::Xor, mask, cucpu::to_u64(var), laneMask, width, CUCPU_AT));
}
inline unsigned __ballot_sync(unsigned mask, int pred, CUCPU_LOC) {
  return (unsigned)cucpu::warp_op(cucpu::WarpOp::Ballot, mask, pred != 0, 0, 32, CUCPU_AT);
}
inline int __any_sync(unsigned mask, int pred, CUCPU_LOC) { return __ballot_sync(mask, pred, CUCPU_AT) != 0; }
inline int __all_sync(unsigned mask, int pred, CUCPU_LOC) { return __ballot_sync(mask, pred, CUCPU_AT) == mask; }

// ------------------------------------------------------------------ ldmatrix, cp.async
namespace cucpu {
// ldmatrix: a lane whose address is used first reads its 16 bytes here, in the kernel's (instrumented) code, so
// ASan sees an out-of-bounds row and TSan a row written by another thread without a barrier; the collective then
// delivers the data by the PTX layout.
inline void ldmatrix(uint32_t* r, int num, bool trans, const void* row, const char* file, int line) {
  const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31u;
  if (lane < 8u * (unsigned)num && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
    const volatile unsigned char* p = static_cast<const volatile unsigned char*>(row);
    for (int i = 0; i < 16; ++i) (void)p[i];
  }
  ldmatrix_collective(r, num, trans, row, file, line);
}

// cp.async.{ca,cg}.shared.global [dst], [src], bytes, src_bytes: queue the copy (checks as ptxas/the GPU would).
inline void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes, bool cg, const char* file,
                     int line) {
  if (bytes != 4 && bytes != 8 && bytes != 16) device_fail(file, line, "cp.async copies 4, 8 or 16 bytes");
  if (cg && bytes != 16) device_fail(file, line, "cp.async.cg copies 16 bytes only");
  if (src_bytes > bytes) device_fail(file, line, "cp.async: src-size larger than the copy size");
  if (((uintptr_t)dst | (uintptr_t)src) % bytes)
    device_fail(file, line, "cp.async: shared or global address not aligned to the copy size");
  CpAsyncQueue& q = cp_async_queue(file, line);
  q.copies.push_back(CpAsyncCopy{dst, src, bytes, src_bytes, q.open});
}
// cp.async.commit_group: close the current group (an empty group is allowed, as in PTX).
inline void cp_async_commit(const char* file, int line) { ++cp_async_queue(file, line).open; }
// cp.async.wait_group n: perform (retire) every copy of the committed groups except the newest n; copies not yet
// committed stay pending.
inline void cp_async_wait_group(unsigned n, const char* file, int line) {
  CpAsyncQueue& q = cp_async_queue(file, line);
  const unsigned limit = q.open > n ? q.open - n : 0;  // groups [0, limit) are retired
  size_t keep = 0;
  for (size_t i = 0; i < q.copies.size(); ++i) {
    const CpAsyncCopy& c = q.copies[i];
    if (c.group < limit) {
      if (c.src_bytes) std::memcpy(c.dst, c.src, c.src_bytes);
      if (c.src_bytes < c.bytes) std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
    } else {
      q.copies[keep++] = c;
    }
  }
  q.copies.resize(keep);
}
// cp.async.wait_all = commit_group + wait_group 0.
inline void cp_async_wait_all(const char* file, int line) {
  cp_async_commit(file, line);
  cp_async_wait_group(0, file, line);
}
}  // namespace cucpu

// ------------------------------------------------------------------ memory ordering and misc
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) {}
inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }
#define __trap() ::cucpu::trap(__FILE__, __LINE__)

// ------------------------------------------------------------------ atomics (real atomics: TSan-visible)
#define CUCPU_ATOMIC_INT(T)                                                                             \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                  \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }               \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                  \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                    \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                  \
  inline T atomicCAS(T* a, T cmp, T v) {                                                                \
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                 \
    return cmp;                                                                                         \
  }                                                                                                     \
  inline T atomicMax(T* a, T v) {                                                                       \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                       \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                 \
    return old;                                                                                         \
  }                                                                                                     \
  inline T atomicMin(T* a, T v) {                                                                       \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                       \
    while (v < old && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                 \
    return old;                                                                                         \
  }
CUCPU_ATOMIC_INT(int)
CUCPU_ATOMIC_INT(unsigned int)
CUCPU_ATOMIC_INT(unsigned long long)
#undef CUCPU_ATOMIC_INT
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned* a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline long long atomicMax(long long* a, long long v) {
  long long old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline long long atomicMin(long long* a, long long v) {
  long long old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (v < old && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline unsigned short atomicCAS(unsigned short* a, unsigned short cmp, unsigned short v) {
  __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}
inline unsigned atomicInc(unsigned* a, unsigned limit) {  // ((old >= limit) ? 0 : old + 1)
  unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(a, &old, old >= limit ? 0u : old + 1, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
  return old;
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {  // (((old == 0) || (old > limit)) ? limit : old - 1)
  unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(a, &old, (old == 0 || old > limit) ? limit : old - 1, true,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
// Floating-point atomics: compare-and-swap loop; the add itself rounds like the hardware (RNE).
template <class T, class F>
inline T cucpu_atomic_rmw(T* a, F f) {
  T old, next;
  __atomic_load(a, &old, __ATOMIC_RELAXED);
  do {
    next = f(old);
  } while (!__atomic_compare_exchange(a, &old, &next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}
inline float atomicAdd(float* a, float v) { return cucpu_atomic_rmw(a, [v](float o) { return o + v; }); }
inline double atomicAdd(double* a, double v) { return cucpu_atomic_rmw(a, [v](double o) { return o + v; }); }
inline float atomicExch(float* a, float v) {
  float old;
  __atomic_exchange(a, &v, &old, __ATOMIC_RELAXED);
  return old;
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* a, __nv_bfloat16 v) {
  return cucpu_atomic_rmw(a, [v](__nv_bfloat16 o) { return __float2bfloat16(__bfloat162float(o) + __bfloat162float(v)); });
}
inline __half atomicAdd(__half* a, __half v) {
  return cucpu_atomic_rmw(a, [v](__half o) { return __float2half(__half2float(o) + __half2float(v)); });
}

// ------------------------------------------------------------------ cache-hint loads and stores
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stcg(T* p, typename cucpu::ident<T>::type v) { *p = v; }
template <class T> inline void __stcs(T* p, typename cucpu::ident<T>::type v) { *p = v; }
template <class T> inline void __stwb(T* p, typename cucpu::ident<T>::type v) { *p = v; }
template <class T> inline void __stwt(T* p, typename cucpu::ident<T>::type v) { *p = v; }

// ------------------------------------------------------------------ math intrinsics (exact on the CPU;
// the GPU's __expf/rsqrtf/__fdividef are approximations: GPU-vs-CPU comparisons need tolerances)
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }

inline unsigned __float_as_uint(float x) { return cucpu::bits_as<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return cucpu::bits_as<float>(x); }
inline int __float_as_int(float x) { return cucpu::bits_as<int>(x); }
inline float __int_as_float(int x) { return cucpu::bits_as<float>(x); }
inline long long __double_as_longlong(double x) { return cucpu::bits_as<long long>(x); }
inline double __longlong_as_double(long long x) { return cucpu::bits_as<double>(x); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xFFFFFFu) * (b & 0xFFFFFFu); }

// CUDA's global min/max overloads (keep this header out of host-only files that say `using namespace std`).
#define CUCPU_MINMAX(R, A, B)                                   \
  inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; } \
  inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
CUCPU_MINMAX(int, int, int)
CUCPU_MINMAX(unsigned, unsigned, unsigned)
CUCPU_MINMAX(unsigned, int, unsigned)
CUCPU_MINMAX(unsigned, unsigned, int)
CUCPU_MINMAX(long, long, long)
CUCPU_MINMAX(unsigned long, unsigned long, unsigned long)
CUCPU_MINMAX(unsigned long, long, unsigned long)
CUCPU_MINMAX(unsigned long, unsigned long, long)
CUCPU_MINMAX(long long, long long, long long)
CUCPU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
CUCPU_MINMAX(unsigned long long, long long, unsigned long long)
CUCPU_MINMAX(unsigned long long, unsigned long long, long long)
#undef CUCPU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
