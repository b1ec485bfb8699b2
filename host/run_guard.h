// run_guard.h — what keeps a training run from being mixed with another one or lost to a signal.
//
// OutputLock: an exclusive flock(2) on "<dir>/LOCK", held for the life of the run. The kernel drops it when the
// process dies (kill -9 included), so a stale lock never blocks a restart. The holder writes its pid into the
// file, so a second trainer on the same -o fails with exit 2 naming that pid instead of interleaving checkpoints
// and main.log with the first.
//
// StopSignals: SIGTERM / SIGINT set a flag the training loop reads once per optimizer step (finish the step,
// write a complete checkpoint, say so in one line, exit 0); a second signal restores the default action and
// re-raises itself, i.e. exits at once. Only async-signal-safe work happens in the handler.
#pragma once
#include <csignal>
#include <string>

namespace llm {

class OutputLock {
 public:
  // mkdir -p has been done by the caller. Fails (llm::Error) when another live process holds the lock:
  // "<dir>: another trainer (pid N) is writing to this output directory".
  explicit OutputLock(const std::string& dir);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  static std::string lock_path(const std::string& dir) { return dir + "/LOCK"; }

 private:
  int fd_ = -1;
};

class StopSignals {
 public:
  StopSignals();   // installs the SIGTERM / SIGINT handlers (and clears any earlier request)
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // 0 = no request, else the number of the first signal received.
  static int requested();
  static const char* name(int sig);  // "SIGTERM", "SIGINT"

 private:
  struct sigaction old_term_ {}, old_int_ {};
};

// Removes "*.tmp" files a killed writer left in dir (call only while holding the OutputLock).
void remove_stale_temporaries(const std::string& dir);

}  // namespace llm
