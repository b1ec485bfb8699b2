// cli.h — the training/eval command line shared by gpt2_cpu and (later) the GPU trainer.
//
// Why shared: both programs must accept the same flags with the same meaning, so a run can move between them.
// Long names for readability, plus llm.c's one-letter aliases (-i -j -e -o -b -t -d -x -k -l -u -q -c -v -m -s
// -g -n -y) so llm.c command lines work unchanged. Every number is validated after parsing; a bad value is an
// llm::Error with a message naming the flag, which main() turns into "error: ..." and exit code 2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace llm {

struct TrainOptions {
  std::string train_data = "data/tinyshakespeare/tiny_shakespeare_train.bin";  // -i glob pattern
  std::string val_data = "data/tinyshakespeare/tiny_shakespeare_val.bin";      // -j glob pattern ("" = no val)
  std::string init;                 // -e llm.c checkpoint .bin, or a preset name (random init)
  std::string preset;               // --preset (random init); default "d6" when neither is given
  std::string output_dir;           // -o checkpoints + main.log; "" = none
  std::string tokenizer_dir;        // --tokenizer-dir with encoder.json + vocab.bpe, for decoding samples
  int batch_size = 4;               // -b micro-batch B
  int seq_len = 64;                 // -t T (<= model context)
  int64_t total_batch = -1;         // -d tokens per optimizer step; -1 = B·T (no accumulation)
  int64_t max_steps = -1;           // -x optimizer steps; -1 = one epoch of the train data
  std::string lr_schedule = "cosine";  // -k cosine | constant | linear
  float lr = 3e-4f;                 // -l peak learning rate
  int warmup = 0;                   // -u warmup steps
  float min_lr_frac = 1.0f;         // -q final LR as a fraction of the peak (llm.c default 1.0 = no decay)
  float weight_decay = 0.0f;        // -c
  bool weight_decay_all = false;    // --weight-decay-all: decay every tensor (the book) instead of 2-D weights only
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;  // AdamW
  float grad_clip = 1.0f;           // --grad-clip global-norm threshold; 0 = off
  float dropout = -1.0f;            // --dropout; -1 = the model config's value
  uint64_t seed = 42;               // --seed: random init, dropout masks, sampling
  int threads = 0;                  // --threads OpenMP threads; 0 = OpenMP default
  int val_every = 20;               // -v val loss every N steps (and at the start and end); 0 = off
  int val_max_batches = 20;         // -m val batches per evaluation; -1 = whole val set
  int sample_every = 20;            // -s sample every N steps (and at the end); 0 = off
  int gen_tokens = 64;              // -g tokens per sample
  float temperature = 1.0f;         // --temperature; 0 = greedy
  std::string hellaswag;            // --hellaswag JSONL: HellaSwag accuracy during training (host/hellaswag.h); "" = off
  int hellaswag_every = 20;         // --hellaswag-every N steps (and first/last), like -v; 0 = off
  int checkpoint_every = 0;         // -n checkpoint every N steps (and at the end when -o is set); 0 = end only
  bool checkpoint_bf16 = false;     // --checkpoint-bf16: write version-5 model files
  int resume = 0;                   // -y 1: resume from the latest complete checkpoint in -o
  // data parallel (several ranks: mpirun, or torchrun-style env for the GPU trainer)
  int zero_stage = 0;               // -z 0: every rank keeps the whole AdamW state; 1: ZeRO-1, each rank a shard
  double rendezvous_timeout = 120;  // --rendezvous-timeout seconds to wait for the other ranks (TCP rendezvous)
  double collective_timeout = 1800;  // --collective-timeout: a collective waiting longer ends the ranks (MPI, NCCL)
  int max_bad_steps = 10;           // --max-bad-steps: stop (exit 2) after this many non-finite steps in a row
  bool overwrite = false;           // --overwrite: a fresh run may replace the checkpoints already in -o
  // Filled by the parser: the long names of the options given on the command line (e.g. "--max-steps").
  // On --resume every resumable setting NOT given is taken from the run being resumed (resume_settings_text).
  std::vector<std::string> given;
};

struct EvalOptions {
  std::string model;                // --model llm.c checkpoint
  std::string data = "data/tinyshakespeare/tiny_shakespeare_val.bin";  // --data glob pattern
  int batch_size = 4;               // -b
  int seq_len = 64;                 // -t
  int max_batches = -1;             // -m; -1 = every window of the data
  int threads = 0;                  // --threads
};

void add_train_options(CLI::App& app, TrainOptions& o);

// The settings a resumed run inherits when its command line does not give them: model (-e/--preset/--dropout),
// data (-i/-j), batch (-b/-t/-d), -x, schedule and AdamW flags, --seed, -z, and the val/sample/checkpoint/hellaswag
// cadence (--hellaswag with it). "flag=value" lines, floats with 9 significant digits (exact for float). Stored in state files.
std::string resume_settings_text(const TrainOptions& o);
// Sets every setting of `text` whose flag is not in o->given (unknown lines are ignored). source names the file
// in errors.
void apply_resume_settings(TrainOptions* o, const std::string& text, const std::string& source);
void add_eval_options(CLI::App& app, EvalOptions& o);

// --threads: 0 (OpenMP default) .. kMaxThreads; fails naming the flag otherwise.
constexpr int kMaxThreads = 1024;
void check_threads(int threads);
// CLI11 check for a 64-bit seed: decimal digits only, at most 2^64-1 ("-1", "1e23", 2^64 are refused).
CLI::Validator strict_uint64();

// Range checks that need no file (files are checked when opened). Throw llm::Error naming the flag.
void validate_train_options(const TrainOptions& o);
void validate_eval_options(const EvalOptions& o);

// Runs app.parse; returns -1 when the program should go on, else the exit code to return after printing:
// 0 for --help (help on stdout), kExitBadInput (2) for a parse error ("error: ... (run '<program> <verb> --help'
// for the list of options)" on stderr). Programs call it through host/program.h.
int parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace llm
