#include "host/run_guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "host/error.h"

namespace llm {

OutputLock::OutputLock(const std::string& dir) {
  const std::string path = lock_path(dir);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path, ": cannot create the output-directory lock (", std::strerror(errno), ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t got = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) fail(path, ": cannot lock (", std::strerror(err), ")");
    long pid = 0;
    if (got > 0) pid = std::strtol(buf, nullptr, 10);
    fail(dir, ": another trainer (pid ", pid > 0 ? std::to_string(pid) : std::string("unknown"),
         ") is writing to this output directory (", path, " is locked); use another -o or wait for it to finish");
  }
  char pid[32];
  const int len = std::snprintf(pid, sizeof(pid), "%ld\n", static_cast<long>(::getpid()));
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid, len, 0) != len)
    fail(path, ": cannot write the lock file (", std::strerror(errno), ")");
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

namespace {
volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_stop != 0) {  // the second signal: exit at once with the default action
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop = sig;
}
}  // namespace

StopSignals::StopSignals() {
  g_stop = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, &old_term_);
  sigaction(SIGINT, &sa, &old_int_);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGINT, &old_int_, nullptr);
}

int StopSignals::requested() { return g_stop; }

const char* StopSignals::name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}

void remove_stale_temporaries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) std::remove((dir + "/" + name).c_str());
  }
  closedir(d);
}

}  // namespace llm
