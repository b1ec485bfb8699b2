#include "host/cli.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <sstream>
#include <iostream>
#include <limits>

#include "host/error.h"
#include "host/weights_check.h"

namespace llm {

void add_train_options(CLI::App& app, TrainOptions& o) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: last one wins
  app.add_option("-i,--train-data", o.train_data, "train token shards (glob pattern)")->capture_default_str();
  app.add_option("-j,--val-data", o.val_data, "val token shards (glob pattern); empty = no validation")
      ->capture_default_str();
  app.add_option("-e,--init", o.init, "start from these weights (llm.c .bin, model.safetensors or a HF directory with config.json), or a preset name (random init)");
  app.add_option("--preset", o.preset,
                 "random init from a preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl, book-124m, d6, d12, d24, d36, "
                 "d48, tiny, tiny-book (default d6)");
  app.add_option("-o,--output-dir", o.output_dir, "directory for checkpoints and main.log (none if unset)");
  app.add_option("--tokenizer-dir", o.tokenizer_dir, "directory with encoder.json + vocab.bpe to decode samples")
      ->capture_default_str();
  app.add_option("-b,--batch-size", o.batch_size, "micro-batch size B")->capture_default_str();
  app.add_option("-t,--seq-len", o.seq_len, "sequence length T (at most the model context)")->capture_default_str();
  app.add_option("-d,--total-batch", o.total_batch,
                 "tokens per optimizer step, a multiple of B*T (gradient accumulation); -1 = B*T")
      ->capture_default_str();
  app.add_option("-x,--max-steps", o.max_steps, "optimizer steps; -1 = one epoch of the train data")
      ->capture_default_str();
  app.add_option("-k,--lr-schedule", o.lr_schedule, "cosine | constant | linear")->capture_default_str();
  app.add_option("-l,--lr", o.lr, "peak learning rate")->capture_default_str();
  app.add_option("-u,--warmup", o.warmup, "linear warmup steps")->capture_default_str();
  app.add_option("-q,--min-lr-frac", o.min_lr_frac, "final learning rate as a fraction of the peak (0..1)")
      ->capture_default_str();
  app.add_option("-c,--weight-decay", o.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  app.add_flag("--weight-decay-all", o.weight_decay_all, "decay every tensor, not only the 2-D weights");
  app.add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
  app.add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  app.add_option("--adam-eps", o.eps, "AdamW epsilon")->capture_default_str();
  app.add_option("--grad-clip", o.grad_clip, "clip the global gradient norm to this value; 0 = off")
      ->capture_default_str();
  app.add_option("--dropout", o.dropout, "dropout probability; -1 = the model config's value")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of random init, dropout masks and sampling (0..2^64-1)")
      ->check(strict_uint64())
      ->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads; 0 = OpenMP default")->capture_default_str();
  app.add_option("-v,--val-every", o.val_every, "val loss every N steps (and first/last); 0 = off")
      ->capture_default_str();
  app.add_option("-m,--val-max-batches", o.val_max_batches, "val batches per evaluation; -1 = whole val set")
      ->capture_default_str();
  app.add_option("-s,--sample-every", o.sample_every, "print a sample every N steps (and at the end); 0 = off")
      ->capture_default_str();
  app.add_option("--hellaswag", o.hellaswag,
                 "HellaSwag JSONL (hellaswag_val.jsonl) scored during training with the run's B x T; '' = off");
  app.add_option("--hellaswag-every", o.hellaswag_every, "HellaSwag every N steps (and first/last); 0 = off")
      ->capture_default_str();
  app.add_option("-g,--gen-tokens", o.gen_tokens, "tokens per sample")->capture_default_str();
  app.add_option("--temperature", o.temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  app.add_option("-n,--checkpoint-every", o.checkpoint_every,
                 "write a checkpoint every N steps (always at the end when -o is set); 0 = end only")
      ->capture_default_str();
  app.add_flag("--checkpoint-bf16", o.checkpoint_bf16, "write bf16 (version 5) model files");
  app.add_option("-y", o.resume, "1 = resume from the latest complete checkpoint in -o (llm.c style)")
      ->capture_default_str();
  app.add_flag_callback("--resume", [&o] { o.resume = 1; }, "same as -y 1");
  app.add_option("--collective-timeout", o.collective_timeout,
                 "data parallel: seconds a collective may wait for the other ranks (a stopped or hung rank) before "
                 "the ranks are ended with a message (MPI: every rank aborts; NCCL: each waiting rank's watchdog)")
      ->capture_default_str();
  app.add_option("--max-bad-steps", o.max_bad_steps,
                 "a step whose loss or gradient norm is NaN/Inf is skipped (no update) with a warning; this many "
                 "in a row stop the run with exit 2")
      ->capture_default_str();
  add_allow_nonfinite_flag(app);
  app.add_flag("--overwrite", o.overwrite,
               "a fresh run into an -o that holds checkpoints deletes them (without it: exit 2; or use --resume)");
  app.add_option("-z,--zero", o.zero_stage,
                 "data parallel: 0 = every rank holds the whole optimizer state, 1 = ZeRO-1 (sharded AdamW state)")
      ->capture_default_str();
  app.add_option("--rendezvous-timeout", o.rendezvous_timeout,
                 "data parallel: seconds to wait for the other ranks at MASTER_ADDR:MASTER_PORT")
      ->capture_default_str();
  // which options the command line gave (a resume takes the others from the run it continues)
  app.final_callback([&app, &o] {
    o.given.clear();
    for (const CLI::Option* opt : app.get_options())
      if (opt->count() > 0) {
        o.given.push_back(opt->get_name());
        for (const std::string& l : opt->get_lnames()) o.given.push_back("--" + l);
      }
  });
}

namespace {
// One resumable setting: its flag and how to print / parse it.
struct Setting {
  const char* flag;
  std::string (*get)(const TrainOptions&);
  void (*set)(TrainOptions&, const std::string&);
};
std::string fmt_float(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}
#define LLM_STR(field) \
  [](const TrainOptions& o) { return std::string(o.field); }, [](TrainOptions& o, const std::string& v) { o.field = v; }
// Saved values are parsed strictly: the whole text, in the field's range, finite. A value out of range throws
// (apply_resume_settings reports it) instead of wrapping (4294967300 -> 4 in an int) or becoming inf.
template <class T>
T saved_int(const std::string& v) {
  size_t used = 0;
  const long long x = std::stoll(v, &used);
  if (used != v.size() || x < (long long)std::numeric_limits<T>::min() || x > (long long)std::numeric_limits<T>::max())
    throw std::out_of_range(v);
  return static_cast<T>(x);
}
uint64_t saved_u64(const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) throw std::invalid_argument(v);  // no sign
  size_t used = 0;
  const unsigned long long x = std::stoull(v, &used);  // throws out_of_range past 2^64 - 1
  if (used != v.size()) throw std::invalid_argument(v);
  return x;
}
template <class T>
T saved_float(const std::string& v) {
  size_t used = 0;
  const double x = std::stod(v, &used);
  if (used != v.size() || !std::isfinite(x) || std::fabs(x) > (double)std::numeric_limits<T>::max())
    throw std::out_of_range(v);
  return static_cast<T>(x);
}
#define LLM_INT(field)                                                                   \
  [](const TrainOptions& o) { return std::to_string(o.field); },                        \
      [](TrainOptions& o, const std::string& v) { o.field = saved_int<decltype(o.field)>(v); }
#define LLM_U64(field)                                                                   \
  [](const TrainOptions& o) { return std::to_string(o.field); },                        \
      [](TrainOptions& o, const std::string& v) { o.field = saved_u64(v); }
#define LLM_FLT(field)                                                                   \
  [](const TrainOptions& o) { return fmt_float(o.field); },                             \
      [](TrainOptions& o, const std::string& v) { o.field = saved_float<decltype(o.field)>(v); }
const Setting kResumeSettings[] = {
    {"--train-data", LLM_STR(train_data)},     {"--val-data", LLM_STR(val_data)},
    {"--init", LLM_STR(init)},                 {"--preset", LLM_STR(preset)},
    {"--batch-size", LLM_INT(batch_size)},     {"--seq-len", LLM_INT(seq_len)},
    {"--total-batch", LLM_INT(total_batch)},   {"--max-steps", LLM_INT(max_steps)},
    {"--lr-schedule", LLM_STR(lr_schedule)},   {"--lr", LLM_FLT(lr)},
    {"--warmup", LLM_INT(warmup)},             {"--min-lr-frac", LLM_FLT(min_lr_frac)},
    {"--weight-decay", LLM_FLT(weight_decay)}, {"--weight-decay-all", LLM_INT(weight_decay_all)},
    {"--beta1", LLM_FLT(beta1)},               {"--beta2", LLM_FLT(beta2)},
    {"--adam-eps", LLM_FLT(eps)},              {"--grad-clip", LLM_FLT(grad_clip)},
    {"--dropout", LLM_FLT(dropout)},           {"--seed", LLM_U64(seed)},
    {"--val-every", LLM_INT(val_every)},       {"--val-max-batches", LLM_INT(val_max_batches)},
    {"--sample-every", LLM_INT(sample_every)}, {"--gen-tokens", LLM_INT(gen_tokens)},
    {"--temperature", LLM_FLT(temperature)},   {"--checkpoint-every", LLM_INT(checkpoint_every)},
    {"--checkpoint-bf16", LLM_INT(checkpoint_bf16)}, {"--zero", LLM_INT(zero_stage)},
    {"--hellaswag", LLM_STR(hellaswag)},       {"--hellaswag-every", LLM_INT(hellaswag_every)},
};
#undef LLM_STR
#undef LLM_INT
#undef LLM_U64
#undef LLM_FLT
}  // namespace

std::string resume_settings_text(const TrainOptions& o) {
  std::string text;
  for (const Setting& s : kResumeSettings) {
    const std::string v = s.get(o);
    if (v.find('\n') != std::string::npos) fail(s.flag, ": a value with a newline cannot be saved");
    text += std::string(s.flag) + "=" + v + "\n";
  }
  return text;
}

void apply_resume_settings(TrainOptions* o, const std::string& text, const std::string& source) {
  auto given = [o](const char* flag) { return std::find(o->given.begin(), o->given.end(), flag) != o->given.end(); };
  // -e and --preset name the model together: when the command line gives one, the saved other one must not come
  // back (they are mutually exclusive)
  const bool model_given = given("--init") || given("--preset");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) fail(source, ": malformed saved setting '", line, "'");
    const std::string flag = line.substr(0, eq), value = line.substr(eq + 1);
    if (given(flag.c_str())) continue;  // the command line wins
    if (model_given && (flag == "--init" || flag == "--preset")) continue;
    for (const Setting& s : kResumeSettings)
      if (flag == s.flag) {
        try {
          s.set(*o, value);
        } catch (const std::exception&) {
          fail(source, ": malformed saved setting '", line, "'");
        }
      }
  }
}

void add_eval_options(CLI::App& app, EvalOptions& o) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--model", o.model, "model: llm.c .bin, model.safetensors or a HF directory")->required();
  app.add_option("--data", o.data, "token shards (glob pattern)")->capture_default_str();
  app.add_option("-b,--batch-size", o.batch_size, "batch size B")->capture_default_str();
  app.add_option("-t,--seq-len", o.seq_len, "sequence length T")->capture_default_str();
  app.add_option("-m,--max-batches", o.max_batches, "batches to evaluate; -1 = every window")->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads; 0 = OpenMP default")->capture_default_str();
  add_allow_nonfinite_flag(app);
}

// Small checks, each naming the flag and the offending value.
static void positive(const char* flag, int64_t v) {
  if (v <= 0) fail(flag, " must be a positive integer (got ", v, ")");
}
static void at_least(const char* flag, int64_t v, int64_t lo, const char* meaning) {
  if (v < lo) fail(flag, " must be >= ", lo, meaning, " (got ", v, ")");
}
static void finite_in(const char* flag, float v, float lo, float hi, bool hi_open) {
  if (!std::isfinite(v) || v < lo || v > hi || (hi_open && v == hi))
    fail(flag, " must be in [", lo, ", ", hi, hi_open ? ")" : "]", " (got ", v, ")");
}
static void minus_one_or_positive(const char* flag, int64_t v) {
  if (v != -1 && v <= 0) fail(flag, " must be -1 or a positive integer (got ", v, ")");
}

void check_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads)
    fail("--threads must be in 0..", kMaxThreads, " (0 = OpenMP default; got ", threads, ")");
}

CLI::Validator strict_uint64() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos)
          return "must be an integer in 0..18446744073709551615 (got '" + s + "')";
        errno = 0;
        (void)std::strtoull(s.c_str(), nullptr, 10);
        if (errno == ERANGE) return "must be an integer in 0..18446744073709551615 (got '" + s + "')";
        return std::string();
      },
      "UINT64");
}

void validate_train_options(const TrainOptions& o) {
  if (o.train_data.empty()) fail("-i/--train-data must not be empty");
  if (!o.init.empty() && !o.preset.empty()) fail("-e/--init and --preset are mutually exclusive");
  positive("-b/--batch-size", o.batch_size);
  positive("-t/--seq-len", o.seq_len);
  if (o.total_batch != -1) {
    positive("-d/--total-batch", o.total_batch);
    const int64_t bt = static_cast<int64_t>(o.batch_size) * o.seq_len;
    if (o.total_batch % bt != 0)
      fail("-d/--total-batch ", o.total_batch, " is not divisible by B*T = ", o.batch_size, "*", o.seq_len, " = ", bt);
  }
  minus_one_or_positive("-x/--max-steps", o.max_steps);
  if (o.lr_schedule != "cosine" && o.lr_schedule != "constant" && o.lr_schedule != "linear")
    fail("-k/--lr-schedule must be cosine, constant or linear (got '", o.lr_schedule, "')");
  if (!std::isfinite(o.lr) || o.lr <= 0.0f || o.lr > 10.0f) fail("-l/--lr must be in (0, 10] (got ", o.lr, ")");
  at_least("-u/--warmup", o.warmup, 0, "");
  finite_in("-q/--min-lr-frac", o.min_lr_frac, 0.0f, 1.0f, false);
  finite_in("-c/--weight-decay", o.weight_decay, 0.0f, 10.0f, false);
  finite_in("--beta1", o.beta1, 0.0f, 1.0f, true);
  finite_in("--beta2", o.beta2, 0.0f, 1.0f, true);
  if (!std::isfinite(o.eps) || o.eps <= 0.0f || o.eps > 1.0f) fail("--adam-eps must be in (0, 1] (got ", o.eps, ")");
  if (!std::isfinite(o.grad_clip) || o.grad_clip < 0.0f) fail("--grad-clip must be >= 0 (got ", o.grad_clip, ")");
  if (o.dropout != -1.0f) finite_in("--dropout", o.dropout, 0.0f, 1.0f, true);
  check_threads(o.threads);
  at_least("-v/--val-every", o.val_every, 0, " (0 = off)");
  minus_one_or_positive("-m/--val-max-batches", o.val_max_batches);
  at_least("-s/--sample-every", o.sample_every, 0, " (0 = off)");
  at_least("--hellaswag-every", o.hellaswag_every, 0, " (0 = off)");
  at_least("-g/--gen-tokens", o.gen_tokens, 0, "");
  if (!std::isfinite(o.temperature) || o.temperature < 0.0f)
    fail("--temperature must be >= 0 (got ", o.temperature, ")");
  at_least("-n/--checkpoint-every", o.checkpoint_every, 0, " (0 = only at the end)");
  if (o.resume != 0 && o.resume != 1) fail("-y must be 0 or 1 (got ", o.resume, ")");
  if (o.zero_stage != 0 && o.zero_stage != 1) fail("-z/--zero must be 0 or 1 (got ", o.zero_stage, ")");
  if (!std::isfinite(o.rendezvous_timeout) || o.rendezvous_timeout <= 0)
    fail("--rendezvous-timeout must be a positive number of seconds (got ", o.rendezvous_timeout, ")");
  if (o.resume == 1 && o.output_dir.empty()) fail("-y 1/--resume needs -o/--output-dir (where the checkpoints are)");
  positive("--max-bad-steps", o.max_bad_steps);
  if (!std::isfinite(o.collective_timeout) || o.collective_timeout <= 0)
    fail("--collective-timeout must be a positive number of seconds (got ", o.collective_timeout, ")");
  if (o.resume == 1 && o.overwrite) fail("--overwrite and -y 1/--resume are mutually exclusive");
}

void validate_eval_options(const EvalOptions& o) {
  if (o.model.empty()) fail("--model must not be empty");
  if (o.data.empty()) fail("--data must not be empty");
  positive("-b/--batch-size", o.batch_size);
  positive("-t/--seq-len", o.seq_len);
  minus_one_or_positive("-m/--max-batches", o.max_batches);
  check_threads(o.threads);
}

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string cmd = app.get_name();  // "gpt2_cpu generate": the program and the verb that was being parsed
    for (const CLI::App* sub : app.get_subcommands()) cmd += " " + sub->get_name();
    std::cerr << "error: " << e.what() << " (run " << (cmd.empty() ? "with --help" : "'" + cmd + " --help'")
              << " for the list of options)\n";
    return kExitBadInput;
  }
  return -1;
}

}  // namespace llm
