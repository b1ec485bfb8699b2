// cucpu_graph.cpp — streams, events and CUDA graphs of the fake runtime: stream capture recorded and replayed,
// with the rules CUDA enforces during a capture.
//
// Why: on a GPU the trainer's step is captured into a CUDA graph and replayed; a host synchronisation, a pageable
// copy or a stray use of the legacy stream inside the step breaks the capture (or silently escapes the graph).
// Here, outside a capture, work runs at once (streams are synchronous); inside one, kernel launches (with their
// argument packs), cudaMemcpyAsync and cudaMemsetAsync are appended to the capture in call order (every stream that
// joined it through an event appends to the same list: the call order is a valid order of the graph), and
// cudaGraphLaunch replays them. What capture forbids is refused with CUDA's error code (CUDA programming guide,
// "Prohibited and Unhandled Operations"; cudaStreamBeginCapture, cudaThreadExchangeStreamCaptureMode):
//   cudaStreamSynchronize / cudaStreamQuery of a capturing stream       Unsupported (the capture is invalidated)
//   cudaDeviceSynchronize during any capture                            Unsupported (captures invalidated)
//   cudaMalloc/cudaFree/cudaMallocHost/... unless the mode is Relaxed     Unsupported (invalidated)
//   cudaMemcpyAsync on a capturing stream touching pageable host memory  Unsupported (invalidated)
//   the legacy stream (stream 0, cudaStreamLegacy: launches, cudaMemcpy, cudaMemset, sync, query, record, wait,
//     cudaStreamIsCapturing) while a capture is active                  Implicit (captures invalidated). CUDA
//     refuses this when the capturing stream is a blocking one; the layer refuses it always, since such work runs
//     once at capture time and never at replay.
//   cudaEventSynchronize / cudaEventQuery of an event recorded in a capture  CapturedEvent
//   a capturing stream waiting on an event recorded outside the capture  Isolation; on another capture's: Merge
//   any later work on a stream of an invalidated capture                Invalidated
//   cudaStreamEndCapture: stream not capturing IllegalState; not the origin stream Unmatched; another thread
//     (non-Relaxed) WrongThread; a forked stream that did not join back Unjoined; invalidated: Invalidated
//     (the graph is nullptr in every error case).
#include "cuda_cpu/cucpu_rt_internal.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

// One recorded operation.
struct Node {
  enum Kind { kKernel, kCopy, kSet } kind;
  explicit Node(Kind k) : kind(k) {}
  cucpu::LaunchDesc launch{};            // kKernel (launch.pack points into keep)
  std::shared_ptr<const void> keep;      // kKernel: the argument pack
  void* dst = nullptr;                   // kCopy, kSet
  const void* src = nullptr;             // kCopy
  size_t bytes = 0;
  int value = 0;                         // kSet
  cudaMemcpyKind dir = cudaMemcpyDefault;  // kCopy
};

struct Capture {
  CUstream_st* origin;
  cudaStreamCaptureMode mode;
  std::thread::id thread;
  unsigned long long id;
  bool invalid = false;
  std::vector<CUstream_st*> streams;  // origin + every stream that joined
  std::vector<Node> nodes;
};

}  // namespace

struct CUstream_st {
  unsigned flags = 0;
  Capture* cap = nullptr;   // the capture sequence this stream is part of
  uint64_t ops = 0;         // work appended by this stream during its capture
  bool must_join = false;   // a forked stream with work the origin has not waited for
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
  bool captured = false;               // last recorded in a capturing stream
  unsigned long long capture_id = 0;   // that capture
  CUstream_st* from = nullptr;
  uint64_t ops_at = 0;                 // from->ops when recorded
};
struct CUgraph_st {
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<Node> nodes;
};

namespace {

using cucpu::rt::ret;

std::recursive_mutex g_mu;  // capture bookkeeping (host code may call the runtime from several threads)
std::vector<std::unique_ptr<Capture>> g_active;
unsigned long long g_next_id = 1;
thread_local cudaStreamCaptureMode t_mode = cudaStreamCaptureModeGlobal;

bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy; }
// cudaStreamPerThread has no object here: it never captures (BeginCapture on it is refused).
bool is_object(cudaStream_t s) { return !is_legacy(s) && s != cudaStreamPerThread; }

void invalidate_all() {
  for (auto& c : g_active) c->invalid = true;
}

Capture* find_capture(unsigned long long id) {
  for (auto& c : g_active)
    if (c->id == id) return c.get();
  return nullptr;
}

// The capture that `s` appends to (nullptr: run now), or the error CUDA returns for work on `s` now.
cudaError_t route(cudaStream_t s, Capture** cap) {
  *cap = nullptr;
  if (is_legacy(s)) return cucpu::cap::legacy_stream_use();
  if (!is_object(s) || !s->cap) return cudaSuccess;
  if (s->cap->invalid) return cudaErrorStreamCaptureInvalidated;
  *cap = s->cap;
  return cudaSuccess;
}

void append(cudaStream_t s, Node n) {
  s->cap->nodes.push_back(std::move(n));
  ++s->ops;
  if (s != s->cap->origin) s->must_join = true;
}

void leave(Capture* c) {
  for (CUstream_st* s : c->streams) {
    s->cap = nullptr;
    s->ops = 0;
    s->must_join = false;
  }
  g_active.erase(std::find_if(g_active.begin(), g_active.end(), [c](auto& p) { return p.get() == c; }));
}

cudaError_t run(const Node& n) {
  switch (n.kind) {
    case Node::kKernel: cucpu::run_grid(n.launch); return cudaSuccess;
    case Node::kCopy: return cucpu::rt::copy(n.dst, n.src, n.bytes, n.dir);
    case Node::kSet: return cucpu::rt::set(n.dst, n.value, n.bytes);
  }
  return cudaErrorInvalidValue;
}

// Work on stream `s`: appended when it is being captured, else run now.
cudaError_t submit(cudaStream_t s, Node n) {
  {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    Capture* cap = nullptr;
    if (cudaError_t e = route(s, &cap)) return e;
    if (cap) {
      append(s, std::move(n));
      return cudaSuccess;
    }
  }
  return run(n);  // outside the lock: kernels of different host threads may run at once
}

}  // namespace

namespace cucpu::cap {
cudaError_t unsafe_call() {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (t_mode == cudaStreamCaptureModeRelaxed) return cudaSuccess;
  bool refused = false;
  for (auto& c : g_active) {
    if (c->mode == cudaStreamCaptureModeRelaxed) continue;
    const bool own = c->thread == std::this_thread::get_id();
    if (own || (c->mode == cudaStreamCaptureModeGlobal && t_mode == cudaStreamCaptureModeGlobal)) {
      c->invalid = true;
      refused = true;
    }
  }
  return refused ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t legacy_stream_use() {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (g_active.empty()) return cudaSuccess;
  invalidate_all();
  return cudaErrorStreamCaptureImplicit;
}

bool capturing(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  return is_object(s) && s->cap;
}
}  // namespace cucpu::cap

namespace cucpu {
cudaError_t launch_on_stream(cudaStream_t stream, const LaunchDesc& d, std::shared_ptr<const void> keep) {
  Node n(Node::kKernel);
  n.launch = d;
  n.keep = std::move(keep);
  return ret(submit(stream, std::move(n)));
}

void launch_failed(const char* file, int line, const char* what, cudaError_t e) {
  std::fprintf(stderr, "%s:%d: launch_kernel(%s) failed: %s (%s)\n", file, line, what, cudaGetErrorString(e),
               cudaGetErrorName(e));
  std::fflush(stderr);
  std::abort();
}
}  // namespace cucpu

extern "C" {

// ------------------------------------------------------------------ streams
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  if (!s) return ret(cudaErrorInvalidValue);
  *s = new CUstream_st;
  (*s)->flags = flags;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned int flags, int) {
  return cudaStreamCreateWithFlags(s, flags);
}
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}
cudaError_t cudaStreamGetFlags(cudaStream_t s, unsigned int* flags) {
  if (!flags) return ret(cudaErrorInvalidValue);
  *flags = is_object(s) ? s->flags : cudaStreamDefault;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!is_object(s)) return ret(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (s->cap) {  // destroying a stream in the middle of a capture: the capture cannot complete
    s->cap->invalid = true;
    auto& v = s->cap->streams;
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    if (s->cap->origin == s) s->cap->origin = nullptr;
  }
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (is_legacy(s)) return ret(cucpu::cap::legacy_stream_use());
  if (is_object(s) && s->cap) {
    s->cap->invalid = true;
    return ret(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }  // same rules; work is done
cudaError_t cudaDeviceSynchronize(void) {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (g_active.empty()) return cudaSuccess;
  invalidate_all();
  return ret(cudaErrorStreamCaptureUnsupported);
}

// ------------------------------------------------------------------ events
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (!e) return ret(cudaErrorInvalidValue);
  *e = new CUevent_st;
  (*e)->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return ret(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  Capture* cap = nullptr;
  if (cudaError_t err = route(s, &cap)) return ret(err);
  e->captured = cap != nullptr;
  if (cap) {
    e->capture_id = cap->id;
    e->from = s;
    e->ops_at = s->ops;
  } else {
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
  }
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (!e) return ret(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  Capture* cap = nullptr;
  if (cudaError_t err = route(s, &cap)) return ret(err);
  Capture* from = e->captured ? find_capture(e->capture_id) : nullptr;
  if (!from) {
    if (!cap) return cudaSuccess;  // ordinary wait: the work is done already
    cap->invalid = true;           // a dependency on work outside the capture
    return ret(cudaErrorStreamCaptureIsolation);
  }
  if (from->invalid) return ret(cudaErrorStreamCaptureInvalidated);
  if (cap && cap != from) {
    cap->invalid = from->invalid = true;
    return ret(cudaErrorStreamCaptureMerge);
  }
  if (!cap) {  // fork: s joins the capture of the event
    s->cap = from;
    s->ops = 0;
    from->streams.push_back(s);
  }
  // join: the event covers everything its stream had captured
  if (e->from != s && e->from && e->from->cap == from && e->from->ops == e->ops_at) e->from->must_join = false;
  if (s != from->origin) s->must_join = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return ret(cudaErrorInvalidResourceHandle);
  return e->captured ? ret(cudaErrorCapturedEvent) : cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end) return ret(cudaErrorInvalidValue);
  if (start->captured || end->captured) return ret(cudaErrorCapturedEvent);
  if (!start->recorded || !end->recorded) return ret(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}

// ------------------------------------------------------------------ async copies and sets
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t s) {
  if (cudaError_t e = cucpu::rt::check_copy(dst, src, count, kind)) return e;
  if (count == 0) return cudaSuccess;
  if (cucpu::cap::capturing(s) && cucpu::rt::touches_pageable(dst, const_cast<void*>(src), count)) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    s->cap->invalid = true;  // a pageable copy is staged by the host at the call: nothing a graph can replay
    return ret(cudaErrorStreamCaptureUnsupported);
  }
  Node n(Node::kCopy);
  n.dst = dst;
  n.src = src;
  n.bytes = count;
  n.dir = kind;
  return ret(submit(s, std::move(n)));
}
cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t s) {
  if (cudaError_t e = cucpu::rt::check_set(devPtr, count)) return e;
  if (count == 0) return cudaSuccess;
  Node n(Node::kSet);
  n.dst = devPtr;
  n.bytes = count;
  n.value = value;
  return ret(submit(s, std::move(n)));
}

// ------------------------------------------------------------------ capture
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode) {
  if (!is_object(s)) return ret(cudaErrorStreamCaptureUnsupported);  // not on the legacy / per-thread stream
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (s->cap) return ret(cudaErrorIllegalState);
  auto c = std::make_unique<Capture>();
  c->origin = s;
  c->mode = mode;
  c->thread = std::this_thread::get_id();
  c->id = g_next_id++;
  c->streams.push_back(s);
  s->cap = c.get();
  s->ops = 0;
  s->must_join = false;
  g_active.push_back(std::move(c));
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  if (!graph) return ret(cudaErrorInvalidValue);
  *graph = nullptr;
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (!is_object(s) || !s->cap) return ret(cudaErrorIllegalState);
  Capture* c = s->cap;
  if (c->origin != s) {
    c->invalid = true;
    return ret(cudaErrorStreamCaptureUnmatched);
  }
  if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id())
    return ret(cudaErrorStreamCaptureWrongThread);
  cudaError_t e = c->invalid ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
  for (CUstream_st* t : c->streams)
    if (!e && t->must_join) e = cudaErrorStreamCaptureUnjoined;
  if (!e) *graph = new CUgraph_st{std::move(c->nodes)};
  leave(c);
  return ret(e);
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus* status) {
  if (!status) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  *status = cudaStreamCaptureStatusNone;
  if (is_legacy(s)) return ret(cucpu::cap::legacy_stream_use());
  if (is_object(s) && s->cap)
    *status = s->cap->invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaThreadExchangeStreamCaptureMode(enum cudaStreamCaptureMode* mode) {
  if (!mode) return ret(cudaErrorInvalidValue);
  std::swap(*mode, t_mode);
  return cudaSuccess;
}

// ------------------------------------------------------------------ graphs
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* num) {
  if (!graph || !num) return ret(cudaErrorInvalidValue);
  if (nodes) return ret(cudaErrorNotSupported);  // only the count is emulated
  *num = graph->nodes.size();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return ret(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return ret(cudaErrorInvalidResourceHandle);
  for (const Node& n : exec->nodes)  // into a capture: the nodes are appended (CUDA adds a child graph)
    if (cudaError_t e = submit(s, n)) return ret(e);
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

}  // extern "C"
