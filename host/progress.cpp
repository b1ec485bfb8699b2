#include "host/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <utility>

#include "host/error.h"

namespace llm {

Progress::Progress(int64_t total_steps, const std::string& log_path) : total_(total_steps), log_path_(log_path) {
  if (!log_path.empty()) {
    log_ = std::fopen(log_path.c_str(), "a");
    if (!log_) fail(log_path, ": cannot open the log file for appending (", std::strerror(errno), ")");
  }
}

// A lost log line is not a detail (a full disk once gave a log starting at step 1147 and exit 0): any failed
// write stops the run with exit 2.
void Progress::flush_log() {
  errno = 0;
  if (std::fflush(log_) != 0 || std::ferror(log_))
    fail(log_path_, ": cannot write the log (", errno ? std::strerror(errno) : "write error", ")");
}

Progress::~Progress() {
  if (log_) std::fclose(log_);
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof(buf), "%lds", s);
  return buf;
}

void Progress::train_step(int64_t step, float loss, float lr, float grad_norm, double ms, int64_t tokens,
                          double mfu_percent) {
  total_ms_ += ms;
  if (session_steps_++ > 0) {
    timed_ms_ += ms;
    timed_tokens_ += tokens;
  }
  const double tok_s = ms > 0 ? tokens / (ms / 1000.0) : 0.0;
  const double per_step_ms = session_steps_ > 1 ? timed_ms_ / (session_steps_ - 1) : ms;
  const double eta_s = per_step_ms * static_cast<double>(total_ - step) / 1000.0;
  char mfu[32] = "";
  if (mfu_percent < 0) std::snprintf(mfu, sizeof(mfu), " | n/a MFU");
  else if (std::isfinite(mfu_percent)) std::snprintf(mfu, sizeof(mfu), " | %.1f%% MFU", mfu_percent);
  std::printf("step %5lld/%lld | loss %.4f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s%s | ETA %s\n",
              static_cast<long long>(step), static_cast<long long>(total_), loss, lr, grad_norm, ms, tok_s, mfu,
              format_duration(eta_s).c_str());
  std::fflush(stdout);
  if (log_) {
    std::fprintf(log_, "step %lld train %.6f lr %.6g norm %.6f ms %.1f tok_s %.1f", static_cast<long long>(step),
                 loss, lr, grad_norm, ms, tok_s);
    if (std::isfinite(mfu_percent) && mfu_percent >= 0) std::fprintf(log_, " mfu %.2f", mfu_percent);  // GPU only
    std::fputc('\n', log_);
    flush_log();
  }
}

void Progress::val(int64_t step, float loss) {
  const double ppl = std::exp(static_cast<double>(loss));
  std::printf("val loss %.4f | perplexity %.4f (step %lld)\n", loss, ppl, static_cast<long long>(step));
  std::fflush(stdout);
  if (log_) {
    std::fprintf(log_, "step %lld val %.6f ppl %.4f\n", static_cast<long long>(step), loss, ppl);
    flush_log();
  }
}

void Progress::hellaswag(int64_t step, int64_t items, double acc, double acc_norm) {
  std::printf("hellaswag: items %lld | acc %.4f | acc_norm %.4f (step %lld)\n", static_cast<long long>(items), acc,
              acc_norm, static_cast<long long>(step));
  std::fflush(stdout);
  if (log_) {
    std::fprintf(log_, "step %lld hellaswag %.6f acc_norm %.6f items %lld\n", static_cast<long long>(step), acc,
                 acc_norm, static_cast<long long>(items));
    flush_log();
  }
}

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ItemProgress::ItemProgress(std::string what, int64_t total, bool enabled)
    : what_(std::move(what)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1), start_s_(now_s()) {
  next_report_ = total_ / 10;
}

void ItemProgress::update(int64_t done) {
  if (!enabled_) return;
  if (tty_) {
    const double t = now_s();
    if (t - last_s_ < 0.2) return;
    last_s_ = t;
  } else {
    if (done < next_report_ || done >= total_) return;
    next_report_ = done + std::max<int64_t>(1, total_ / 10);
  }
  print(done, false);
}

void ItemProgress::finish(int64_t done) {
  if (enabled_) print(done, true);
}

void ItemProgress::print(int64_t done, bool final_line) {
  const double elapsed = now_s() - start_s_;
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : std::nan("");
  std::fprintf(stderr, "%s%s %lld/%lld | %.1f items/s | %s %s%s", tty_ ? "\r" : "", what_.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), rate, final_line ? "took" : "ETA",
               Progress::format_duration(final_line ? elapsed : eta).c_str(), tty_ && !final_line ? "   " : "\n");
  std::fflush(stderr);
}

double Progress::mean_tok_per_s() const { return timed_ms_ > 0 ? timed_tokens_ / (timed_ms_ / 1000.0) : 0.0; }

}  // namespace llm
