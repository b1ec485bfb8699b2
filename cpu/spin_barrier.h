// spin_barrier.h — a barrier for the threads of one OpenMP team that spins briefly, then yields the core.
//
// Why: a decode step is ~60 dependent matrix-vector products of a few µs to 1 ms each, so its threads meet at a
// barrier every ~100 µs. OpenMP's own barrier either spins (OMP_WAIT_POLICY=active: ~1 µs, but a thread whose
// partner lost its core burns the whole wait) or sleeps in the kernel (passive: a futex wake-up of tens of µs per
// barrier, ~2 ms per token). This one spins for a bounded time — long enough for a partner that is merely a bit
// behind — and then calls sched_yield() between checks, so a descheduled partner gets the core back.
#pragma once
#include <sched.h>

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLM_CPU_RELAX() _mm_pause()
#else
#define LLM_CPU_RELAX() ((void)0)
#endif

namespace llm {

class SpinBarrier {
 public:
  // Called by each of the `threads` threads of the team; returns when all of them have called it. Everything a
  // thread wrote before its call is visible to every thread after the call.
  void wait(int threads) {
    if (threads <= 1) return;
    const unsigned gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads - 1) {  // the last one in opens the barrier
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; spins++) {
      if (spins < kSpins) LLM_CPU_RELAX();
      else sched_yield();
    }
  }

 private:
  static constexpr int kSpins = 200;  // pause instructions (~40-140 cycles each): ~3-10 µs, then yield
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> generation_{0};
};

}  // namespace llm
