// cucpu_sched.cpp — fibers, the warp run-ahead scheduler, the strict checks and the watchdog.
//
// Execution model (see cuda_cpu/README.md): one CUDA thread = one Boost.Context fcontext fiber on a reused,
// guard-paged stack. A block runs in rounds: the warps are taken in order (random order with
// CUCPU_SHUFFLE), and each warp runs until none of its lanes can move; its lanes run one after another
// between warp synchronisation points (Volta+ independent scheduling, no lock-step). When every live thread
// waits at __syncthreads the barrier is checked (same source line, nobody exited) and released. Warp
// operations complete when every lane of their mask has arrived; each lane's result is computed then.
// Everything that is not the kernel (this file) runs on the calling thread; blocks run one after another.
#include "cuda_cpu/cucpu.h"

#include <boost/context/detail/fcontext.hpp>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CUCPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUCPU_ASAN 1
#endif
#endif
#ifdef CUCPU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
// In TSan builds this file is compiled without instrumentation (its bookkeeping is not kernel memory) and
// CMake defines CUCPU_TSAN so that fibers, barriers and warp operations are announced to TSan.
#if defined(__SANITIZE_THREAD__) && !defined(CUCPU_TSAN)
#define CUCPU_TSAN 1
#endif
#ifdef CUCPU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace cucpu {

Config& config() {
  static Config c = [] {
    Config k;
    if (const char* s = getenv("CUCPU_STRICT")) k.strict = atoi(s) != 0;
    if (const char* s = getenv("CUCPU_SHUFFLE")) {
      if (*s) {
        k.shuffle = true;
        k.seed = strtoull(s, nullptr, 10);
      }
    }
    if (const char* s = getenv("CUCPU_WATCHDOG_S")) k.watchdog_s = atof(s);
    if (const char* s = getenv("CUCPU_STACK_KB")) {
      long v = atol(s);
      if (v >= 16 && v <= 65536) k.stack_kb = (size_t)v;
    }
    return k;
  }();
  return c;
}

Stats& stats() {
  static Stats s;
  return s;
}

// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) is recorded here (cucpu_rt.cpp).
std::map<const void*, int>& smem_optin() {
  static std::map<const void*, int> m;
  return m;
}

namespace {

// ---------------------------------------------------------------- context switch
// Default: Boost.Context's make_fcontext/jump_fcontext, the maintained library for this job.
// Opt-in (-DCUCPU_FAST_SWITCH, x86-64 only): an own 16-instruction switch. Boost's jump_fcontext also saves and reloads MXCSR and the x87
// control word on every switch (ldmxcsr/fldcw serialise the pipeline: 2/3 of its samples in perf here);
// kernels never change the FP environment, so all fibers share it. Like Boost it returns with an indirect
// jmp, not ret: a ret into another stack mispredicts every time (measured 2.4x slower per switch). It roughly
// halves the cost of a barrier (dev/cucpu_overhead); kept opt-in so the default path is the library's.
struct Transfer {
  void* fctx;
  void* data;
};
using EntryFn = void (*)(Transfer);
#if defined(__x86_64__) && defined(CUCPU_FAST_SWITCH)
}  // namespace
}  // namespace cucpu
extern "C" {
cucpu::Transfer cucpu_jump(void* to, void* data);  // saves callee-saved registers, switches stacks
void cucpu_trampoline();                           // first frame of a fiber: calls the entry (in r12)
}
asm(R"(
  .text
  .p2align 4
  .globl cucpu_jump
  .hidden cucpu_jump
  .type cucpu_jump, @function
cucpu_jump:
  pushq %rbp
  pushq %rbx
  pushq %r15
  pushq %r14
  pushq %r13
  pushq %r12
  movq %rsp, %rax
  movq %rdi, %rsp
  popq %r12
  popq %r13
  popq %r14
  popq %r15
  popq %rbx
  popq %rbp
  popq %r8
  movq %rsi, %rdx
  jmp *%r8
  .size cucpu_jump, .-cucpu_jump

  .p2align 4
  .globl cucpu_trampoline
  .hidden cucpu_trampoline
  .type cucpu_trampoline, @function
cucpu_trampoline:
  movq %rax, %rdi
  movq %rdx, %rsi
  callq *%r12
  ud2
  .size cucpu_trampoline, .-cucpu_trampoline
)");
namespace cucpu {
namespace {
inline Transfer jump_to(void* to, void* data) { return cucpu_jump(to, data); }
// Initial frame, as cucpu_jump pops it: r12 = entry, r13..rbp = 0, return address = trampoline; the
// trampoline then runs with a 16-byte aligned stack, as the ABI wants at a call.
inline void* make_context(char* top, size_t, EntryFn fn) {
  uintptr_t t = reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(t - 72);
  sp[0] = reinterpret_cast<void*>(fn);
  for (int i = 1; i < 6; ++i) sp[i] = nullptr;
  sp[6] = reinterpret_cast<void*>(&cucpu_trampoline);
  return sp;
}
#else
namespace bctx = boost::context::detail;
inline Transfer jump_to(void* to, void* data) {
  bctx::transfer_t t = bctx::jump_fcontext(to, data);
  return Transfer{t.fctx, t.data};
}
void (*g_entry)(Transfer) = nullptr;
inline void boost_entry(bctx::transfer_t t) { g_entry(Transfer{t.fctx, t.data}); }
inline void* make_context(char* top, size_t size, EntryFn fn) {
  g_entry = fn;
  return bctx::make_fcontext(top, size, boost_entry);
}
#endif

enum State : uint8_t { kReady, kAtBar, kAtWarp, kDone };

struct Fiber {
  void* ctx = nullptr;
  State state = kReady;
  uint3 tid{0, 0, 0};
  unsigned lane = 0, warp = 0;
  const char* file = "";  // where the fiber waits (barrier or warp operation)
  int line = 0;
  int pred = 0;  // __syncthreads_count/and/or predicate
  // the warp operation in flight
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  uint64_t val = 0, res = 0;
  int src = -1;
  int arg = 0;
  // tensor-core collectives: this lane's input registers (mma: a0..a3, b0, b1, c0..c3 as bits) and results
  uint32_t tc_in[10] = {0};
  uint32_t tc_out[4] = {0};
  CpAsyncQueue cpq;  // cp.async copies issued and not yet retired
  // its stack
  char* stack_lo = nullptr;  // lowest usable byte (guard page below)
  size_t stack_size = 0;
  void* asan_fake = nullptr;
  void* tsan = nullptr;
  char tsan_name[64] = {0};
};

struct Warp {
  unsigned exists = 0, arrived = 0, exited = 0;
  unsigned first = 0;  // linear index of lane 0
  // pending warp operations: disjoint lane groups; cover = union of their masks, gmask[l] = l's group
  unsigned cover = 0;
  unsigned gmask[32];
  uint8_t gclass[32];
};

struct Stack {
  char* map = nullptr;  // mmap base; the first page is the guard
  size_t total = 0;
};

struct Worker {
  std::vector<Stack> stacks;
  size_t stack_kb = 0;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  void* sched_ctx = nullptr;
  Fiber* cur = nullptr;
  const LaunchDesc* launch = nullptr;
  std::string name;  // kernel name for messages
  bool running = false;
  unsigned n = 0, n_done = 0, n_bar = 0;
  int bar_count = 0;  // number of true predicates at the last barrier
  unsigned char* smem = nullptr;
  uint64_t rng = 0;
  std::vector<unsigned> order;  // scratch permutation
  const void* sched_stack_lo = nullptr;  // ASan: the scheduler's stack
  size_t sched_stack_size = 0;
  void* tsan_main = nullptr;
  char tsan_bar = 0, tsan_block = 0, tsan_end = 0;
  char tsan_warp[32 * 32] = {0};
};

thread_local Worker* tw = nullptr;

Worker& worker() {
  if (!tw) tw = new Worker();  // one per OS thread, never freed (stacks are reused for the process)
  return *tw;
}

size_t page_size() {
  static size_t p = (size_t)sysconf(_SC_PAGESIZE);
  return p;
}

// ---------------------------------------------------------------- the watchdog (SIGALRM per launch)
const char* volatile g_wd_name = "";
const char* volatile g_wd_file = "";
volatile int g_wd_line = 0;
volatile double g_wd_seconds = 0;
volatile unsigned g_wd_block[3] = {0, 0, 0};

void watchdog_handler(int) {
  char msg[768];
  int len = snprintf(msg, sizeof msg,
                     "cucpu: watchdog: kernel '%s' (launched at %s:%d) still running after %.3g s, in block "
                     "(%u,%u,%u); set CUCPU_WATCHDOG_S to change the limit (0 = off)\n",
                     g_wd_name, g_wd_file, g_wd_line, (double)g_wd_seconds, g_wd_block[0], g_wd_block[1],
                     g_wd_block[2]);
  if (len > 0) {
    ssize_t r = write(2, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1);
    (void)r;
  }
  signal(SIGABRT, SIG_DFL);
  abort();
}

#ifdef CUCPU_TSAN
// TSan defers asynchronous signals until the program calls into libc, so a kernel spinning in a loop would
// never see SIGALRM: under TSan a polling thread (started per process: fork() does not copy threads) aborts.
std::atomic<long long> g_wd_deadline_ns{0};  // 0 = disarmed
long long now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}
void arm_watchdog(Worker& w, double seconds) {
  if (seconds <= 0) return;
  static pid_t started_in = 0;
  if (started_in != getpid()) {
    started_in = getpid();
    std::thread([] {
      for (;;) {
        usleep(20000);
        long long d = g_wd_deadline_ns.load();
        if (d && now_ns() > d) watchdog_handler(0);
      }
    }).detach();
  }
  g_wd_name = w.name.c_str();
  g_wd_file = w.launch->file;
  g_wd_line = w.launch->line;
  g_wd_seconds = seconds;
  g_wd_deadline_ns.store(now_ns() + (long long)(seconds * 1e9));
}
void disarm_watchdog(double) { g_wd_deadline_ns.store(0); }
#else
void arm_watchdog(Worker& w, double seconds) {
  if (seconds <= 0) return;
  static bool installed = false;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = watchdog_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, nullptr);
    installed = true;
  }
  g_wd_name = w.name.c_str();
  g_wd_file = w.launch->file;
  g_wd_line = w.launch->line;
  g_wd_seconds = seconds;
  struct itimerval it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_sec = (time_t)seconds;
  it.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
  if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) it.it_value.tv_usec = 1;
  setitimer(ITIMER_REAL, &it, nullptr);
}

void disarm_watchdog(double seconds) {
  if (seconds <= 0) return;
  struct itimerval it;
  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, nullptr);
}
#endif

// ---------------------------------------------------------------- messages
[[noreturn]] void vfail(const char* fmt, va_list ap) {
  Worker* w = tw;
  char body[2048];
  vsnprintf(body, sizeof body, fmt, ap);
  if (w && w->launch) {
    fprintf(stderr, "cucpu: kernel '%s' (launched at %s:%d), block (%u,%u,%u): %s\n", w->name.c_str(),
            w->launch->file, w->launch->line, blockIdx.x, blockIdx.y, blockIdx.z, body);
  } else {
    fprintf(stderr, "cucpu: %s\n", body);
  }
  fflush(stderr);
  abort();
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(fmt, ap);
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::Idx: return "__shfl_sync";
    case WarpOp::Up: return "__shfl_up_sync";
    case WarpOp::Down: return "__shfl_down_sync";
    case WarpOp::Xor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Mma: return "mma.sync.m16n8k16";
    case WarpOp::Ldmatrix: return "ldmatrix.sync.m8n8";
  }
  return "?";
}

// Lanes of one pending group must all run the same kind of operation: shuffles of any kind (2), or the same
// tensor-core instruction (3: mma; 4 + arg: ldmatrix, whose arg encodes .x1/.x2/.x4 and .trans).
int op_class(WarpOp op, int arg) {
  switch (op) {
    case WarpOp::Sync: return 0;
    case WarpOp::Ballot: return 1;
    case WarpOp::Mma: return 3;
    case WarpOp::Ldmatrix: return 4 + arg;
    default: return 2;
  }
}

// kernel name = the first top-level argument of launch_kernel(...)
std::string kernel_name(const char* what) {
  int depth = 0;
  const char* p = what;
  for (; *p; ++p) {
    char c = *p;
    if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
    if (c == '>' || c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth <= 0) break;
  }
  std::string s(what, p);
  size_t a = s.find_first_not_of(" \t\n"), b = s.find_last_not_of(" \t\n");
  return a == std::string::npos ? s : s.substr(a, b - a + 1);
}

uint64_t next_rand(Worker& w) {  // splitmix64
  uint64_t z = (w.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void shuffle_order(Worker& w, unsigned count) {
  w.order.resize(count);
  for (unsigned i = 0; i < count; ++i) w.order[i] = i;
  for (unsigned i = count; i > 1; --i) std::swap(w.order[i - 1], w.order[next_rand(w) % i]);
}

// ---------------------------------------------------------------- fiber switching
void fiber_entry(Transfer t);

// scheduler -> fiber
inline void resume(Worker& w, Fiber* f) {
  w.cur = f;
  threadIdx = f->tid;
#ifdef CUCPU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack_lo, f->stack_size);
#endif
#ifdef CUCPU_TSAN
  __tsan_switch_to_fiber(f->tsan, __tsan_switch_to_fiber_no_sync);
#endif
  Transfer t = jump_to(f->ctx, f);
  f->ctx = t.fctx;
#ifdef CUCPU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  w.cur = nullptr;
}

// fiber -> scheduler; returns when the scheduler resumes this fiber
inline void yield(Worker& w, Fiber* f) {
#ifdef CUCPU_ASAN
  __sanitizer_start_switch_fiber(&f->asan_fake, w.sched_stack_lo, w.sched_stack_size);
#endif
#ifdef CUCPU_TSAN
  __tsan_switch_to_fiber(w.tsan_main, __tsan_switch_to_fiber_no_sync);
#endif
  Transfer t = jump_to(w.sched_ctx, nullptr);
  w.sched_ctx = t.fctx;
#ifdef CUCPU_ASAN
  __sanitizer_finish_switch_fiber(f->asan_fake, &w.sched_stack_lo, &w.sched_stack_size);
#endif
  (void)f;
}

void on_exit(Worker& w, Fiber* f) {
  Warp& W = w.warps[f->warp];
  unsigned bit = 1u << f->lane;
  f->state = kDone;
  ++w.n_done;
  W.exited |= bit;
  if (W.cover & bit) {
    Fiber& g = w.fibers[W.first + __builtin_ctz(W.gmask[f->lane] & W.arrived)];
    fail("thread (%u,%u,%u) (warp %u lane %u) exited while lane %u waits at %s (%s:%d) with mask 0x%08x, which "
           "includes the exited lane",
           f->tid.x, f->tid.y, f->tid.z, f->warp, f->lane, g.lane, op_name(g.op), g.file, g.line, g.mask);
  }
}

void fiber_entry(Transfer t) {
  Worker& w = *tw;
  w.sched_ctx = t.fctx;
  Fiber* f = static_cast<Fiber*>(t.data);
#ifdef CUCPU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &w.sched_stack_lo, &w.sched_stack_size);
#endif
#ifdef CUCPU_TSAN
  __tsan_acquire(&w.tsan_block);
#endif
  w.launch->body(w.launch->pack);
  on_exit(w, f);
#ifdef CUCPU_TSAN
  __tsan_release(&w.tsan_end);
  __tsan_switch_to_fiber(w.tsan_main, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef CUCPU_ASAN
  __sanitizer_start_switch_fiber(nullptr, w.sched_stack_lo, w.sched_stack_size);  // this fiber is finished
#endif
  jump_to(w.sched_ctx, nullptr);
  abort();  // a finished fiber is never resumed
}

// ---------------------------------------------------------------- setup
// A fiber that overflows its stack hits the guard page below it: name the kernel and thread instead of a
// bare SIGSEGV. Runs on an alternate signal stack. Not installed under ASan/TSan (they report it themselves).
#if !defined(CUCPU_ASAN) && !defined(CUCPU_TSAN)
void segv_handler(int sig, siginfo_t* si, void*) {
  Worker* w = tw;
  const char* a = static_cast<const char*>(si->si_addr);
  if (w && w->launch && w->cur) {
    size_t pg = page_size();
    for (const Stack& st : w->stacks)
      if (a >= st.map && a < st.map + pg)
        fail("thread (%u,%u,%u) overflowed its %zu KiB fiber stack (local arrays too large or deep recursion; "
             "raise CUCPU_STACK_KB)",
             threadIdx.x, threadIdx.y, threadIdx.z, w->stack_kb);
  }
  signal(sig, SIG_DFL);  // anything else: the default action when the access faults again
}

void install_segv_handler() {
  static thread_local bool done = false;
  if (done) return;
  done = true;
  static thread_local char* alt = nullptr;
  const size_t alt_size = 64 * 1024;
  alt = static_cast<char*>(malloc(alt_size));
  stack_t ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_sp = alt;
  ss.ss_size = alt_size;
  sigaltstack(&ss, nullptr);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) sigaction(SIGSEGV, &sa, nullptr);
}
#else
void install_segv_handler() {}
#endif

void ensure_stacks(Worker& w, unsigned n) {
  install_segv_handler();
  size_t kb = config().stack_kb;
  if (kb != w.stack_kb) {  // size changed: drop the pool
    for (Stack& s : w.stacks) munmap(s.map, s.total);
    w.stacks.clear();
    w.stack_kb = kb;
  }
  size_t pg = page_size();
  size_t usable = (kb * 1024 + pg - 1) / pg * pg;
  while (w.stacks.size() < n) {
    Stack s;
    s.total = usable + pg;
    void* p = mmap(nullptr, s.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail("cannot mmap a %zu KiB fiber stack", kb);
    mprotect(p, pg, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting memory
    s.map = static_cast<char*>(p);
    w.stacks.push_back(s);
  }
  if (w.fibers.size() < n) w.fibers.resize(n);
#ifdef CUCPU_TSAN
  // TSan fibers made before a fork() (gtest death tests) are dead threads in the child: make new ones
  static pid_t fibers_of = 0;
  if (fibers_of != getpid()) {
    fibers_of = getpid();
    for (Fiber& f : w.fibers) f.tsan = nullptr;
    w.tsan_main = __tsan_get_current_fiber();
  }
  for (unsigned i = 0; i < n; ++i)
    if (!w.fibers[i].tsan) w.fibers[i].tsan = __tsan_create_fiber(0);
#endif
  for (unsigned i = 0; i < n; ++i) {
    w.fibers[i].stack_lo = w.stacks[i].map + pg;
    w.fibers[i].stack_size = w.stacks[i].total - pg;
  }
}

void check_config(Worker& w, const LaunchDesc& d) {
  const dim3 &b = d.block, &g = d.grid;
  unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
  if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64)
    fail("invalid block size (%u,%u,%u) = %llu threads: CUDA allows 1..1024 threads (x,y <= 1024, z <= 64)", b.x,
         b.y, b.z, threads);
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    fail("invalid grid size (%u,%u,%u): CUDA allows x in 1..2^31-1, y and z in 1..65535", g.x, g.y, g.z);
  int limit = 48 * 1024;
  auto it = smem_optin().find(d.fn);
  if (it != smem_optin().end() && it->second > limit) limit = it->second;
  if (d.smem > (size_t)limit)
    fail("dynamic shared memory of %zu bytes exceeds the kernel's limit of %d bytes (above 48 KiB a kernel needs "
         "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))",
         d.smem, limit);
  (void)w;
}

// ---------------------------------------------------------------- one block
void run_warp(Worker& w, unsigned wi, bool shuffle) {
  const Warp& W = w.warps[wi];
  unsigned lanes = (unsigned)__builtin_popcount(W.exists);
  bool progressed = true;
  while (progressed) {
    progressed = false;
    if (shuffle) {
      shuffle_order(w, lanes);
      for (unsigned k = 0; k < lanes; ++k) {
        Fiber* f = &w.fibers[W.first + w.order[k]];
        if (f->state == kReady) {
          resume(w, f);
          progressed = true;
        }
      }
    } else {
      for (unsigned l = 0; l < lanes; ++l) {
        Fiber* f = &w.fibers[W.first + l];
        if (f->state == kReady) {
          resume(w, f);
          progressed = true;
        }
      }
    }
  }
}

// Every fiber now waits at __syncthreads, waits at a warp operation, or has exited.
void finish_round(Worker& w) {
  for (const Warp& W : w.warps) {
    if (!W.arrived) continue;
    const Fiber& g = w.fibers[W.first + __builtin_ctz(W.arrived)];
    unsigned missing = g.mask & ~W.arrived;
    const Fiber& m = w.fibers[W.first + __builtin_ctz(missing ? missing : 1u)];
    fail("deadlock: lanes 0x%08x of warp %u wait at %s (%s:%d) with mask 0x%08x, but lane %u waits at "
         "__syncthreads (%s:%d)",
         W.arrived, g.warp, op_name(g.op), g.file, g.line, g.mask, m.lane, m.file, m.line);
  }
  if (w.n_bar == 0) fail("deadlock: no runnable thread and no barrier to release");
  const Fiber* first = nullptr;
  for (unsigned i = 0; i < w.n; ++i)
    if (w.fibers[i].state == kAtBar) {
      first = &w.fibers[i];
      break;
    }
  if (w.n_done > 0 && config().strict) {
    const Fiber* ex = nullptr;
    for (unsigned i = 0; i < w.n && !ex; ++i)
      if (w.fibers[i].state == kDone) ex = &w.fibers[i];
    fail("%u thread(s) exited (e.g. thread (%u,%u,%u)) while %u others wait at __syncthreads (%s:%d)", w.n_done,
         ex->tid.x, ex->tid.y, ex->tid.z, w.n_bar, first->file, first->line);
  }
  int count = 0;
  for (unsigned i = 0; i < w.n; ++i) {
    Fiber& f = w.fibers[i];
    if (f.state != kAtBar) continue;
    if (f.line != first->line || (f.file != first->file && strcmp(f.file, first->file) != 0))
      fail("divergent __syncthreads: thread (%u,%u,%u) waits at %s:%d while thread (%u,%u,%u) waits at %s:%d",
           first->tid.x, first->tid.y, first->tid.z, first->file, first->line, f.tid.x, f.tid.y, f.tid.z, f.file,
           f.line);
    count += f.pred != 0;
    f.state = kReady;
  }
  w.bar_count = count;
  w.n_bar = 0;
}

void run_block(Worker& w, unsigned bx, unsigned by, unsigned bz) {
  blockIdx = uint3{bx, by, bz};
  g_wd_block[0] = bx;
  g_wd_block[1] = by;
  g_wd_block[2] = bz;
  if (w.launch->smem) memset(w.smem, 0xFF, w.launch->smem);  // fresh poison: uninitialised reads give NaN
  for (unsigned i = 0; i < w.n; ++i) {
    Fiber& f = w.fibers[i];
    // Cache colouring: the stacks are page-aligned, so without an offset every fiber's hot top-of-stack
    // lines would fall into the same L1 sets and evict each other at every switch.
    size_t colour = (i % 64) * 64;
    f.ctx = make_context(f.stack_lo + f.stack_size - colour, f.stack_size - colour, fiber_entry);
    f.state = kReady;
    f.cpq.copies.clear();  // copies a thread of the previous block left pending are dropped
    f.cpq.open = 0;
#ifdef CUCPU_TSAN
    snprintf(f.tsan_name, sizeof f.tsan_name, "cuda block (%u,%u,%u) thread (%u,%u,%u)", bx, by, bz, f.tid.x,
             f.tid.y, f.tid.z);
    __tsan_set_fiber_name(f.tsan, f.tsan_name);
#endif
  }
  for (Warp& W : w.warps) W.arrived = W.exited = W.cover = 0;
  w.n_done = w.n_bar = 0;
#ifdef CUCPU_TSAN
  __tsan_release(&w.tsan_block);
#endif
  unsigned nw = (unsigned)w.warps.size();
  const bool shuffle = config().shuffle;
  std::vector<unsigned> wo;
  while (true) {
    if (shuffle) {
      shuffle_order(w, nw);
      wo = w.order;  // run_warp reuses w.order for lanes
      for (unsigned k = 0; k < nw; ++k) run_warp(w, wo[k], true);
    } else {
      for (unsigned k = 0; k < nw; ++k) run_warp(w, k, false);
    }
    if (w.n_done == w.n) break;
    finish_round(w);
  }
#ifdef CUCPU_TSAN
  __tsan_acquire(&w.tsan_end);
#endif
}

// ---------------------------------------------------------------- tensor-core collectives (PTX ISA layouts)
// groupID = lane >> 2, tig = lane % 4 (threadID_in_group). A 32-bit register holds two b16 values, the element
// with the smaller index in the low half.
inline float bf16_bits_to_float(uint32_t h) { return bits_as<float>(h << 16); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 over the 32 lanes of warp W (inputs in tc_in).
void tc_mma(Worker& w, const Warp& W) {
  float A[16][16], B[16][8], C[16][8];
  for (unsigned l = 0; l < 32; ++l) {
    const Fiber& f = w.fibers[W.first + l];
    const unsigned g = l >> 2, t = l & 3;
    for (unsigned i = 0; i < 8; ++i) {  // a_i: register i/2, half i&1
      const uint32_t h = (f.tc_in[i >> 1] >> (16 * (i & 1))) & 0xFFFFu;
      const unsigned row = g + 8 * ((i >> 1) & 1);  // a0,a1,a4,a5: groupID; a2,a3,a6,a7: groupID + 8
      const unsigned col = t * 2 + (i & 1) + 8 * (i >> 2);  // +8 for a4..a7
      A[row][col] = bf16_bits_to_float(h);
    }
    for (unsigned i = 0; i < 4; ++i) {  // b_i: register 4 + i/2
      const uint32_t h = (f.tc_in[4 + (i >> 1)] >> (16 * (i & 1))) & 0xFFFFu;
      const unsigned k = t * 2 + (i & 1) + 8 * (i >> 1);  // b0,b1: rows 2t, 2t+1; b2,b3: + 8
      B[k][g] = bf16_bits_to_float(h);                     // column = groupID
    }
    for (unsigned i = 0; i < 4; ++i)  // c0,c1: row groupID; c2,c3: row groupID + 8; column 2t + (i&1)
      C[g + 8 * (i >> 1)][t * 2 + (i & 1)] = bits_as<float>(f.tc_in[6 + i]);
  }
  for (unsigned l = 0; l < 32; ++l) {
    Fiber& f = w.fibers[W.first + l];
    const unsigned g = l >> 2, t = l & 3;
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned row = g + 8 * (i >> 1), col = t * 2 + (i & 1);
      float acc = C[row][col];
      for (unsigned k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];  // bf16 products are exact in fp32
      f.tc_out[i] = bits_as<uint32_t>(acc);
    }
  }
}

// ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16 over warp W (row addresses in val).
void tc_ldmatrix(Worker& w, const Warp& W, int num, bool trans) {
  uint16_t M[4][8][8];
  for (int m = 0; m < num; ++m)
    for (int r = 0; r < 8; ++r) {
      const Fiber& f = w.fibers[W.first + 8 * m + r];  // lanes 8m..8m+7 give matrix m's rows
      const void* p = reinterpret_cast<const void*>(f.val);
      if (reinterpret_cast<uintptr_t>(p) % 16)
        fail("ldmatrix (%s:%d): lane %u's row address %p is not 16-byte aligned", f.file, f.line, f.lane, p);
      std::memcpy(M[m][r], p, 16);
    }
  for (unsigned l = 0; l < 32; ++l) {
    Fiber& f = w.fibers[W.first + l];
    const unsigned g = l >> 2, t = l & 3;
    for (int m = 0; m < num; ++m) {
      const uint32_t lo = trans ? M[m][2 * t][g] : M[m][g][2 * t];          // without .trans: row l/4,
      const uint32_t hi = trans ? M[m][2 * t + 1][g] : M[m][g][2 * t + 1];  // columns 2(l%4), 2(l%4)+1
      f.tc_out[m] = lo | hi << 16;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- device-side entry points
void syncthreads(const char* file, int line) { syncthreads_reduce(0, 0, file, line); }

int syncthreads_reduce(int op, int pred, const char* file, int line) {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("__syncthreads called outside a kernel (%s:%d)", file, line);
  Worker& w = *wp;
  Fiber* f = w.cur;
  f->state = kAtBar;
  f->file = file;
  f->line = line;
  f->pred = pred;
  ++w.n_bar;
  ++stats().barrier_arrivals;
#ifdef CUCPU_TSAN
  __tsan_release(&w.tsan_bar);
#endif
  yield(w, f);
#ifdef CUCPU_TSAN
  __tsan_acquire(&w.tsan_bar);
#endif
  int live = (int)(w.n - w.n_done);
  return op == 0 ? w.bar_count : op == 1 ? (w.bar_count == live) : (w.bar_count > 0);
}

uint64_t warp_op(WarpOp op, unsigned mask, uint64_t val, int arg, int width, const char* file, int line) {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("%s called outside a kernel (%s:%d)", op_name(op), file, line);
  Worker& w = *wp;
  Fiber* f = w.cur;
  Warp& W = w.warps[f->warp];
  const unsigned lane = f->lane, bit = 1u << lane;
  if (!(mask & bit))
    fail("thread (%u,%u,%u) (lane %u) calls %s (%s:%d) with mask 0x%08x, which does not include its own lane",
         f->tid.x, f->tid.y, f->tid.z, lane, op_name(op), file, line, mask);
  if (mask & ~W.exists)
    fail("%s (%s:%d) mask 0x%08x names lanes that do not exist (warp %u has lanes 0x%08x)", op_name(op), file, line,
         mask, f->warp, W.exists);
  if (mask & W.exited)
    fail("%s (%s:%d) mask 0x%08x names lanes that have exited (0x%08x)", op_name(op), file, line, mask,
         mask & W.exited);
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail("%s (%s:%d): width %d is not a power of two in 1..32", op_name(op), file, line, width);
  const uint8_t cls = (uint8_t)op_class(op, arg);
  if (unsigned hit = mask & W.cover) {  // joins a pending group: it must be the same mask and kind of op
    unsigned k = __builtin_ctz(hit);
    if (W.gmask[k] != mask || W.gclass[k] != cls) {
      const Fiber& g = w.fibers[W.first + __builtin_ctz(W.gmask[k] & W.arrived)];
      fail("lane %u waits at %s (%s:%d) with mask 0x%08x while lane %u arrives at %s (%s:%d) with mask 0x%08x",
           g.lane, op_name(g.op), g.file, g.line, g.mask, lane, op_name(op), file, line, mask);
    }
  } else {  // opens a new group
    W.cover |= mask;
    for (unsigned a = mask; a; a &= a - 1) {
      W.gmask[__builtin_ctz(a)] = mask;
      W.gclass[__builtin_ctz(a)] = cls;
    }
  }
  const int seg = (int)lane & ~(width - 1), in_seg = (int)lane - seg;
  int src = -1;
  switch (op) {
    case WarpOp::Idx: src = seg + (arg & (width - 1)); break;
    case WarpOp::Up: src = (unsigned)in_seg >= (unsigned)arg ? (int)lane - arg : (int)lane; break;
    case WarpOp::Down: src = (unsigned)in_seg + (unsigned)arg < (unsigned)width ? (int)lane + arg : (int)lane; break;
    case WarpOp::Xor: {  // PTX shfl.bfly: a source lane past the segment's end reads its own value
      unsigned s = lane ^ (unsigned)arg;
      src = s > (unsigned)(seg + width - 1) ? (int)lane : (int)s;
      break;
    }
    default: break;
  }
  f->op = op;
  f->mask = mask;
  f->val = val;
  f->src = src;
  f->arg = arg;
  f->file = file;
  f->line = line;
  f->state = kAtWarp;
  W.arrived |= bit;
  ++stats().warp_ops;
  if ((W.arrived & mask) == mask && (op == WarpOp::Mma || op == WarpOp::Ldmatrix)) {  // tensor-core collective
    if (op == WarpOp::Mma)
      tc_mma(w, W);
    else
      tc_ldmatrix(w, W, arg >> 1, arg & 1);
    for (unsigned a = mask; a; a &= a - 1) w.fibers[W.first + __builtin_ctz(a)].state = kReady;
    W.arrived &= ~mask;
    W.cover &= ~mask;
  } else if ((W.arrived & mask) == mask) {  // last lane of the group: compute every lane's result
    unsigned ballot = 0;
    for (unsigned a = mask; a; a &= a - 1) {
      const Fiber& g = w.fibers[W.first + __builtin_ctz(a)];
      if (g.val) ballot |= 1u << g.lane;
    }
    for (unsigned a = mask; a; a &= a - 1) {
      Fiber& g = w.fibers[W.first + __builtin_ctz(a)];
      if (g.src >= 0) {
        if (!((mask >> g.src) & 1u))
          fail("lane %u's %s (%s:%d) reads lane %d, which is not in mask 0x%08x", g.lane, op_name(g.op), g.file,
               g.line, g.src, mask);
        g.res = w.fibers[W.first + g.src].val;
      } else {
        g.res = ballot;
      }
      g.state = kReady;
    }
    W.arrived &= ~mask;
    W.cover &= ~mask;
  }
#ifdef CUCPU_TSAN
  void* token = &w.tsan_warp[f->warp % 32 * 32 + __builtin_ctz(mask)];
  __tsan_release(token);
#endif
  yield(w, f);
#ifdef CUCPU_TSAN
  __tsan_acquire(token);
#endif
  return f->res;
}

unsigned active_mask() {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("__activemask called outside a kernel");
  const Warp& W = wp->warps[wp->cur->warp];
  return W.exists & ~W.exited;
}

void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], const char* file,
                       int line) {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("mma.sync called outside a kernel (%s:%d)", file, line);
  Fiber* f = wp->cur;
  for (int i = 0; i < 4; ++i) f->tc_in[i] = a[i];
  f->tc_in[4] = b[0];
  f->tc_in[5] = b[1];
  for (int i = 0; i < 4; ++i) f->tc_in[6 + i] = bits_as<uint32_t>(c[i]);
  warp_op(WarpOp::Mma, 0xffffffffu, 0, 0, 32, file, line);  // .aligned: every lane of the warp
  for (int i = 0; i < 4; ++i) d[i] = bits_as<float>(f->tc_out[i]);
}

void ldmatrix_collective(uint32_t* r, int num, bool trans, const void* row, const char* file, int line) {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("ldmatrix called outside a kernel (%s:%d)", file, line);
  if (num != 1 && num != 2 && num != 4) fail("ldmatrix (%s:%d): .x%d (must be .x1, .x2 or .x4)", file, line, num);
  Fiber* f = wp->cur;
  warp_op(WarpOp::Ldmatrix, 0xffffffffu, reinterpret_cast<uintptr_t>(row), num * 2 + (trans ? 1 : 0), 32, file, line);
  for (int i = 0; i < num; ++i) r[i] = f->tc_out[i];
}

CpAsyncQueue& cp_async_queue(const char* file, int line) {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("cp.async called outside a kernel (%s:%d)", file, line);
  return wp->cur->cpq;
}

void device_fail(const char* file, int line, const char* what) {
  if (tw && tw->cur)
    fail("%s (%s:%d) in thread (%u,%u,%u)", what, file, line, threadIdx.x, threadIdx.y, threadIdx.z);
  fail("%s (%s:%d)", what, file, line);
}

void* dynamic_smem() {
  Worker* wp = tw;
  if (!wp || !wp->cur) fail("DYNAMIC_SHARED used outside a kernel");
  return wp->smem;
}

void trap(const char* file, int line) {
  Worker* wp = tw;
  if (wp && wp->cur)
    fail("__trap() at %s:%d in thread (%u,%u,%u)", file, line, threadIdx.x, threadIdx.y, threadIdx.z);
  fail("__trap() at %s:%d", file, line);
}

// ---------------------------------------------------------------- one launch
void run_grid(const LaunchDesc& d) {
  Worker& w = worker();
  if (w.running) fail("launch_kernel(%s) at %s:%d from inside a kernel: dynamic parallelism is not supported", d.what,
                      d.file, d.line);
  w.launch = &d;
  w.name = kernel_name(d.what);
  check_config(w, d);
  const Config& cfg = config();
  const unsigned n = d.block.x * d.block.y * d.block.z;
  w.n = n;
  ensure_stacks(w, n);
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = w.fibers[i];
    f.tid = uint3{i % d.block.x, i / d.block.x % d.block.y, i / (d.block.x * d.block.y)};
    f.lane = i % 32;
    f.warp = i / 32;
  }
  w.warps.assign((n + 31) / 32, Warp());
  for (unsigned k = 0; k < w.warps.size(); ++k) {
    unsigned lanes = n - k * 32 >= 32 ? 32 : n - k * 32;
    w.warps[k].exists = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    w.warps[k].first = k * 32;
  }
  // dynamic shared memory of exactly the requested size (ASan sees overruns), 16-byte aligned
  void* sm = nullptr;
  if (d.smem == 0) {
    sm = malloc(0);
  } else if (posix_memalign(&sm, 16, d.smem) != 0) {
    sm = nullptr;
  }
  if (!sm && d.smem) fail("cannot allocate %zu bytes of dynamic shared memory", d.smem);
  w.smem = static_cast<unsigned char*>(sm);
  if (cfg.shuffle) {  // the order depends only on the seed and the kernel: a launch replays exactly
    uint64_t h = 1469598103934665603ull;
    for (char c : w.name) h = (h ^ (unsigned char)c) * 1099511628211ull;
    w.rng = cfg.seed * 0x2545F4914F6CDD1Dull ^ h;
  }
  Stats& st = stats();
  ++st.launches;
  const unsigned long long nblocks = (unsigned long long)d.grid.x * d.grid.y * d.grid.z;
  st.blocks += nblocks;
  st.threads += nblocks * n;
  w.running = true;
  blockDim = d.block;
  gridDim = d.grid;
  arm_watchdog(w, cfg.watchdog_s);
  if (cfg.shuffle && nblocks <= (1ull << 22)) {
    std::vector<unsigned> perm;
    shuffle_order(w, (unsigned)nblocks);
    perm.swap(w.order);
    for (unsigned id : perm)
      run_block(w, id % d.grid.x, id / d.grid.x % d.grid.y, (unsigned)(id / ((unsigned long long)d.grid.x * d.grid.y)));
  } else {
    for (unsigned z = 0; z < d.grid.z; ++z)
      for (unsigned y = 0; y < d.grid.y; ++y)
        for (unsigned x = 0; x < d.grid.x; ++x) run_block(w, x, y, z);
  }
  disarm_watchdog(cfg.watchdog_s);
  w.running = false;
  free(w.smem);
  w.smem = nullptr;
  w.launch = nullptr;
  blockIdx = uint3{0, 0, 0};
  threadIdx = uint3{0, 0, 0};
}

}  // namespace cucpu
