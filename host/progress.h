// progress.h — what a training run tells the user and what it leaves for plotting.
//
// Console, one line per optimizer step:
//   step   10/200 | loss 3.2101 | lr 3.00e-04 | norm 1.2345 | 412.3 ms | 1242 tok/s | ETA 1m18s
// (the GPU trainer adds "| 41.2% MFU" before the ETA)
// Log file (main.log in the output dir, appended to on resume), machine-readable, one line per event:
//   step 10 train 3.210100 lr 0.000300 norm 1.234500 ms 412.3 tok_s 1242.0      (+ " mfu 41.20" on a known GPU)
//   step 10 val 3.456700 ppl 31.7123
//   step 10 hellaswag 0.250000 acc_norm 0.265000 items 10042                  (with --hellaswag)
// Step numbers count completed optimizer steps (1-based for train lines; val at step 0 is before training).
// The first step of a session is excluded from the ETA / average (it pays for page faults and warm-up).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace llm {

// A progress bar for work counted in items (e.g. HellaSwag), on stderr so that stdout keeps only results:
//   hellaswag  1200/10042 | 35.2 items/s | ETA 4m11s
// On a terminal the line is rewritten in place (at most 5 times a second); otherwise one line every 10% of the
// work. finish() ends the line.
class ItemProgress {
 public:
  ItemProgress(std::string what, int64_t total, bool enabled);
  void update(int64_t done);
  void finish(int64_t done);

 private:
  void print(int64_t done, bool final_line);
  std::string what_;
  int64_t total_;
  bool enabled_, tty_;
  double start_s_, last_s_ = -1;
  int64_t next_report_ = 0;  // (not a terminal) the count at which the next line is due
};

class Progress {
 public:
  // log_path "" = console only. total_steps is the run's last step (for step/total and the ETA).
  Progress(int64_t total_steps, const std::string& log_path);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // mfu_percent: model FLOPs utilisation of the step, printed as "| 41.2% MFU" (GPU trainer); < 0 prints
  // "| n/a MFU" (unknown device peak); NaN (the default) prints nothing.
  void train_step(int64_t step, float loss, float lr, float grad_norm, double ms, int64_t tokens,
                  double mfu_percent = std::nan(""));
  void val(int64_t step, float loss);
  // HellaSwag (host/hellaswag.h): console "hellaswag: items N | acc A | acc_norm B (step s)",
  // log "step s hellaswag A acc_norm B items N" (A = acc; plot_log.py plots both).
  void hellaswag(int64_t step, int64_t items, double acc, double acc_norm);
  double mean_tok_per_s() const;  // over the steps after the first one of this session (0 if none)
  double total_ms() const { return total_ms_; }

  static std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

 private:
  void flush_log();  // fails (llm::Error naming the log) when a write did not reach the file
  int64_t total_;
  std::FILE* log_ = nullptr;
  std::string log_path_;
  int64_t session_steps_ = 0;
  double timed_ms_ = 0, total_ms_ = 0;  // timed_ms_ excludes the first step
  int64_t timed_tokens_ = 0;
};

}  // namespace llm
