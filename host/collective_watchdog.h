// collective_watchdog.h — ends the process when no collective has completed for too long.
//
// Why: NCCL collectives wait on the GPU. When one rank stops (SIGSTOP, a hung NFS read, a dead node) the others
// sit in cudaStreamSynchronize behind a collective that never completes, and no host code runs that could check
// a deadline (the MPI backend polls instead: host/comm_mpi.cpp). A thread watches the time since the last
// completed host-synchronous collective (every training step has several: loss, norm, stop flag) and, past
// --collective-timeout, prints which rank gave up, runs the backend's abort (ncclCommAbort) and exits with
// kExitBadInput. The launcher (mpirun, torchrun, Slurm) then ends the remaining ranks, and a rank that is merely
// waiting fires its own watchdog too.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "host/error.h"

namespace llm {

class CollectiveWatchdog {
 public:
  CollectiveWatchdog() = default;
  ~CollectiveWatchdog() { stop(); }
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Watches from now on with this timeout (seconds, > 0; a second call replaces the timeout). on_timeout runs on
  // the watchdog thread just before the exit (it must not wait for the other ranks).
  void start(double timeout_s, int rank, std::function<void()> on_timeout) {
    std::lock_guard<std::mutex> lock(mutex_);
    timeout_s_ = timeout_s;
    rank_ = rank;
    on_timeout_ = std::move(on_timeout);
    last_ = Clock::now();
    if (!thread_.joinable()) thread_ = std::thread([this] { watch(); });
  }

  // A collective completed: the deadline starts again.
  void progress() {
    std::lock_guard<std::mutex> lock(mutex_);
    last_ = Clock::now();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      const double waited = std::chrono::duration<double>(Clock::now() - last_).count();
      if (waited > timeout_s_) {
        std::fflush(stdout);
        std::fprintf(stderr,
                     "error: data parallel: rank %d: no collective completed for %.0f s (--collective-timeout %g s): "
                     "another rank stopped or hung; aborting\n",
                     rank_, waited, timeout_s_);
        if (on_timeout_) on_timeout_();
        std::_Exit(kExitBadInput);  // no destructors: they would wait on the hung stream
      }
      // check a few times per timeout, at least once a second
      const double nap = timeout_s_ / 4 < 1.0 ? timeout_s_ / 4 : 1.0;
      wake_.wait_for(lock, std::chrono::duration<double>(nap));
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
  Clock::time_point last_ = Clock::now();
  double timeout_s_ = 0;
  int rank_ = 0;
  bool stopping_ = false;
  std::function<void()> on_timeout_;
};

}  // namespace llm
