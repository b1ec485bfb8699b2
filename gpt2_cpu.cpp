// gpt2_cpu.cpp — the CPU reference trainer and evaluator.
//
//   gpt2_cpu train [options]   train GPT-2 on llm.c token shards (random init from a preset, or an llm.c
//                              checkpoint), with val loss, samples, checkpoints and exact --resume
//   gpt2_cpu eval --model M --data D [-b B -t T -m MAXBATCHES]
//                              mean loss over consecutive B×T windows from the start of D (like llm.c's val
//                              loader); prints "val_loss <x>" and "perplexity <x>"
//
// One training step (llm.c's loop, gradient accumulation over accum = total_batch / (B·T) micro-batches):
//   zero grads; for each micro-batch: forward (dropout seeded by (seed, step, micro)), backward(1/accum)
//   clip the global grad norm; lr = schedule(step); AdamW update (t = step+1)
// Resume: a checkpoint at step s is model_s.bin (weights), state_s.bin (AdamW m/v, loader position, seed,
// settings fingerprint) and an empty DONE_s marker written last; -y 1 continues from the highest DONE_s so the
// resumed run equals the uninterrupted one bit for bit (same thread count).
// Every bad input is an llm::Error: main prints "error: <message>" and exits with 2.
#include <dirent.h>
#include <omp.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <new>
#include <sstream>

#include "cpu/gpt2_infer.h"  // weights: generate subcommand
#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "host/binary_io.h"
#include "host/checkpoint.h"
#include "host/cli.h"
#include "host/data_loader.h"
#include "host/error.h"
#include "host/gpt2_config.h"
#include "host/hf_gpt2.h"  // weights: export subcommand
#include "host/progress.h"
#include "host/sampling.h"
#include "host/tokenizer.h"
#include "host/train_state.h"

namespace {

using llm::fail;

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

std::string step_name(const std::string& dir, const char* prefix, int64_t step, const char* ext) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "/%s_%08lld%s", prefix, static_cast<long long>(step), ext);
  return dir + buf;
}

// Highest step s with a DONE_s marker in dir, or -1.
int64_t latest_done_step(const std::string& dir) {
  int64_t best = -1;
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    long long s;
    char tail;
    if (std::sscanf(e->d_name, "DONE_%lld%c", &s, &tail) == 1 && s > best) best = s;
  }
  closedir(d);
  return best;
}

void make_dirs(const std::string& dir) {
  std::string partial;
  std::stringstream ss(dir);
  for (std::string part; std::getline(ss, part, '/');) {
    partial += part + "/";
    if (part.empty() || part == ".") continue;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) fail(dir, ": cannot create directory");
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(dir, ": not a directory");
}

// The model a run starts from: an llm.c checkpoint, or a preset (random init, filled in later).
struct ModelSource {
  llm::GPT2Config config;
  std::string checkpoint;  // "" = preset
  std::string describe;
};

ModelSource resolve_model(const llm::TrainOptions& o) {
  ModelSource src;
  std::string name = !o.init.empty() ? o.init : (!o.preset.empty() ? o.preset : "d6");
  if (!o.init.empty() && (llm::file_exists(o.init) || o.init.find(".bin") != std::string::npos)) {
    src.checkpoint = o.init;
    src.config = llm::read_checkpoint_header(o.init).config;
    src.describe = "checkpoint " + o.init;
  } else {
    if (name.rfind("gpt2:", 0) == 0) name = name.substr(5);  // llm.c descriptor "gpt2:d12"
    src.config = llm::preset_config(name);
    src.describe = "preset " + name + " (random init, seed " + std::to_string(o.seed) + ")";
  }
  if (o.dropout >= 0.0f) src.config.dropout = o.dropout;
  return src;
}

// Everything a resume must share with the run that wrote the checkpoint.
std::string fingerprint(const llm::TrainOptions& o, const llm::GPT2Config& c, int accum, int64_t max_steps) {
  std::ostringstream s;
  s << "model maxT=" << c.max_seq_len << " V=" << c.vocab_size << " Vp=" << c.padded_vocab_size
    << " L=" << c.num_layers << " NH=" << c.num_heads << " C=" << c.channels << " qkv_bias=" << c.qkv_bias
    << " tied=" << c.tied_head << " dropout=" << c.dropout << " | "
    << "data " << o.train_data << " B=" << o.batch_size << " T=" << o.seq_len << " accum=" << accum << " | "
    << "steps=" << max_steps << " schedule=" << o.lr_schedule << " lr=" << o.lr << " warmup=" << o.warmup
    << " min_lr_frac=" << o.min_lr_frac << " | "
    << "adamw wd=" << o.weight_decay << " wd_all=" << o.weight_decay_all << " betas=" << o.beta1 << "," << o.beta2
    << " eps=" << o.eps << " clip=" << o.grad_clip << " seed=" << o.seed;
  return s.str();
}

// Mean loss over up to max_batches consecutive windows from the start of `loader`.
float evaluate(llm::GPT2Model& model, llm::DataLoader& loader, int max_batches) {
  const int B = loader.B(), T = loader.T();
  int64_t n = loader.windows_per_epoch();
  if (max_batches > 0 && max_batches < n) n = max_batches;
  std::vector<int> x(static_cast<size_t>(B) * T), y(x.size());
  loader.reset();
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    loader.next_batch(x.data(), y.data());
    sum += model.forward(x.data(), y.data(), B, T);
  }
  return static_cast<float>(sum / static_cast<double>(n));
}

// Generates n tokens after <|endoftext|> (token ids < V; the context slides when it exceeds T).
std::vector<int> generate(llm::GPT2Model& model, int n, int T, float temperature, uint64_t seed) {
  const int V = model.config().vocab_size, Vp = model.config().padded_vocab_size;
  const int start = V > llm::Tokenizer::kEot ? llm::Tokenizer::kEot : 0;
  llm::SamplingParams sp;
  sp.temperature = temperature;
  sp.seed = seed;
  llm::Sampler sampler(sp);
  std::vector<int> ids = {start};
  for (int i = 0; i < n; i++) {
    const int len = std::min<int>(static_cast<int>(ids.size()), T);
    model.forward(ids.data() + ids.size() - len, nullptr, 1, len);
    ids.push_back(sampler.sample(model.logits() + static_cast<size_t>(len - 1) * Vp, V));
  }
  return std::vector<int>(ids.begin() + 1, ids.end());
}

std::unique_ptr<llm::Tokenizer> load_tokenizer(const std::string& dir, int vocab_size) {
  try {
    auto tok = std::make_unique<llm::Tokenizer>(dir.empty() ? llm::Tokenizer::from_default()
                                                            : llm::Tokenizer::from_files(dir + "/encoder.json",
                                                                                         dir + "/vocab.bpe"));
    if (tok->vocab_size() != vocab_size) {
      std::printf("note: the GPT-2 vocabulary has %d tokens but the model %d; samples are printed as ids\n",
                  tok->vocab_size(), vocab_size);
      return nullptr;
    }
    return tok;
  } catch (const llm::Error& e) {
    std::printf("note: no tokenizer (%s); samples are printed as token ids\n", e.what());
    return nullptr;
  }
}

void print_sample(const std::vector<int>& ids, const llm::Tokenizer* tok) {
  std::printf("sample:\n---\n");
  if (tok) {
    std::printf("%s\n", tok->decode(ids).c_str());
  } else {
    for (int id : ids) std::printf("%d ", id);
    std::printf("\n");
  }
  std::printf("---\n");
  std::fflush(stdout);
}

int run_train(const llm::TrainOptions& o) {
  llm::validate_train_options(o);
  if (o.threads > 0) omp_set_num_threads(o.threads);

  // ---- model config and data (all inputs are validated before anything is written) ----
  ModelSource src = resolve_model(o);
  const llm::GPT2Config& cfg = src.config;
  const int B = o.batch_size, T = o.seq_len;
  if (T > cfg.max_seq_len)
    fail("-t/--seq-len ", T, " exceeds the context length ", cfg.max_seq_len, " of the model (", src.describe, ")");
  llm::DataLoader train(o.train_data, B, T, cfg.vocab_size);
  std::unique_ptr<llm::DataLoader> val;
  if (!o.val_data.empty() && o.val_every > 0) val = std::make_unique<llm::DataLoader>(o.val_data, B, T, cfg.vocab_size);
  const int64_t bt = static_cast<int64_t>(B) * T;
  const int accum = static_cast<int>(o.total_batch == -1 ? 1 : o.total_batch / bt);
  int64_t max_steps = o.max_steps;
  if (max_steps == -1) {
    max_steps = train.windows_per_epoch() / accum;
    if (max_steps == 0)
      fail(o.train_data, ": one epoch (", train.windows_per_epoch(), " batches of B*T=", bt,
           ") is shorter than one optimizer step of ", accum, " micro-batches; lower -d or give -x");
  }
  const std::string fp = fingerprint(o, cfg, accum, max_steps);

  // ---- model + optimizer ----
  llm::GPT2Model model(cfg);
  llm::AdamWConfig hp;
  hp.beta1 = o.beta1;
  hp.beta2 = o.beta2;
  hp.eps = o.eps;
  hp.weight_decay = o.weight_decay;
  hp.decay = o.weight_decay_all ? llm::DecayMode::kAll : llm::DecayMode::kMatrices;
  llm::AdamW opt(cfg, hp);
  llm::LRSchedule sched;
  sched.kind = o.lr_schedule == "cosine" ? llm::ScheduleKind::kCosine
               : o.lr_schedule == "linear" ? llm::ScheduleKind::kLinear
                                           : llm::ScheduleKind::kConstant;
  sched.warmup_style = llm::WarmupStyle::kLlmc;
  sched.max_lr = o.lr;
  sched.min_lr = o.lr * o.min_lr_frac;
  sched.warmup_steps = o.warmup;
  sched.total_steps = static_cast<int>(max_steps);

  int64_t start_step = 0;
  const int64_t resume_step = o.resume ? latest_done_step(o.output_dir) : -1;
  if (resume_step >= 0) {
    const std::string mpath = step_name(o.output_dir, "model", resume_step, ".bin");
    const std::string spath = step_name(o.output_dir, "state", resume_step, ".bin");
    std::vector<float> w;
    llm::CheckpointInfo info = llm::load_checkpoint(mpath, &w);
    llm::GPT2Config saved = info.config;
    saved.dropout = cfg.dropout;
    if (llm::num_parameters(saved) != model.num_params() || saved.max_seq_len != cfg.max_seq_len ||
        saved.vocab_size != cfg.vocab_size || saved.num_heads != cfg.num_heads)
      fail(mpath, ": model shape differs from the one this command line asks for (", src.describe, ")");
    llm::TrainState st = llm::load_train_state(spath, model.num_params());
    if (st.fingerprint != fp)
      fail(spath, ": was written with different settings; resume needs the same model, data, batch and optimizer "
                  "flags.\n  saved:   ",
           st.fingerprint, "\n  current: ", fp);
    if (st.step != resume_step) fail(spath, ": holds step ", st.step, " but its name says ", resume_step);
    if (info.dtype == llm::CheckpointDtype::kBf16)
      std::printf("warning: resuming from bf16 weights; the continuation is not bit-exact\n");
    std::copy(w.begin(), w.end(), model.params());
    opt.m() = st.m;
    opt.v() = st.v;
    train.set_position(st.loader);
    start_step = st.step;
  } else if (!src.checkpoint.empty()) {
    std::vector<float> w;
    llm::load_checkpoint(src.checkpoint, &w);
    std::copy(w.begin(), w.end(), model.params());
  } else {
    model.init_gpt2(o.seed);
  }

  // ---- outputs (created only now that every input has been checked) ----
  std::string log_path;
  if (!o.output_dir.empty()) {
    make_dirs(o.output_dir);
    log_path = o.output_dir + "/main.log";
  }
  llm::Progress progress(max_steps, log_path);
  std::printf("gpt2_cpu train | model %s | L=%d NH=%d C=%d maxT=%d V=%d | %zu parameters\n", src.describe.c_str(),
              cfg.num_layers, cfg.num_heads, cfg.channels, cfg.max_seq_len, cfg.vocab_size, model.num_params());
  std::printf("data %s: %lld tokens, %lld batches/epoch | B=%d T=%d accum=%d -> %lld tokens/step | %lld steps | "
              "threads %d\n",
              o.train_data.c_str(), static_cast<long long>(train.total_tokens()),
              static_cast<long long>(train.windows_per_epoch()), B, T, accum, static_cast<long long>(bt * accum),
              static_cast<long long>(max_steps), omp_get_max_threads());
  if (resume_step >= 0) std::printf("resumed from %s at step %lld\n", o.output_dir.c_str(), (long long)start_step);
  else if (o.resume) std::printf("note: no complete checkpoint in %s; starting from scratch\n", o.output_dir.c_str());
  if (o.output_dir.empty()) std::printf("note: no -o/--output-dir: no checkpoints and no log file\n");
  auto tok = o.sample_every > 0 ? load_tokenizer(o.tokenizer_dir, cfg.vocab_size) : nullptr;
  std::fflush(stdout);

  std::vector<int> x(bt), y(bt);
  for (int64_t step = start_step; step <= max_steps; step++) {
    const bool last = step == max_steps;
    const bool resumed_here = resume_step >= 0 && step == start_step;  // already done before the checkpoint
    if (val && !resumed_here && (step % o.val_every == 0 || last))
      progress.val(step, evaluate(model, *val, o.val_max_batches));
    if (o.sample_every > 0 && !resumed_here && step > 0 && (step % o.sample_every == 0 || last))
      print_sample(generate(model, o.gen_tokens, T, o.temperature, o.seed + static_cast<uint64_t>(step)), tok.get());
    if (!o.output_dir.empty() && !resumed_here && step > start_step &&
        (last || (o.checkpoint_every > 0 && step % o.checkpoint_every == 0))) {
      llm::save_checkpoint(step_name(o.output_dir, "model", step, ".bin"), cfg, model.params(),
                           o.checkpoint_bf16 ? llm::CheckpointDtype::kBf16 : llm::CheckpointDtype::kFp32);
      llm::TrainState st;
      st.step = step;
      st.seed = o.seed;
      st.loader = train.position();
      st.fingerprint = fp;
      st.m = opt.m();
      st.v = opt.v();
      llm::save_train_state(step_name(o.output_dir, "state", step, ".bin"), st);
      llm::AtomicFile done(step_name(o.output_dir, "DONE", step, ""));
      done.commit();
      std::printf("checkpoint: %s\n", step_name(o.output_dir, "model", step, ".bin").c_str());
    }
    if (last) break;

    const double t0 = now_ms();
    model.zero_grad();
    double loss = 0;
    for (int micro = 0; micro < accum; micro++) {
      train.next_batch(x.data(), y.data());
      llm::TrainFlags flags{true, llm::dropout_step_seed(o.seed, static_cast<uint64_t>(step), micro)};
      loss += model.forward(x.data(), y.data(), B, T, flags);
      model.backward(1.0f / static_cast<float>(accum));
    }
    loss /= accum;
    const double norm = o.grad_clip > 0 ? llm::clip_grad_norm(model, o.grad_clip, llm::ClipStyle::kLlmc)
                                        : llm::grad_norm(model);
    const float lr = sched(static_cast<int>(step));
    opt.step(model, lr, static_cast<int>(step + 1));
    if (!std::isfinite(loss)) fail("training diverged: loss is ", loss, " at step ", step + 1, " (lower -l/--lr?)");
    progress.train_step(step + 1, static_cast<float>(loss), lr, static_cast<float>(norm), now_ms() - t0, bt * accum);
  }
  std::printf("done: %lld steps in %s, %.0f tok/s average (excluding each session's first step)\n",
              static_cast<long long>(max_steps - start_step),
              llm::Progress::format_duration(progress.total_ms() / 1000.0).c_str(), progress.mean_tok_per_s());
  return 0;
}

int run_eval(const llm::EvalOptions& o) {
  llm::validate_eval_options(o);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  std::vector<float> w;
  llm::CheckpointInfo info = llm::load_checkpoint(o.model, &w);
  if (o.seq_len > info.config.max_seq_len)
    fail("-t/--seq-len ", o.seq_len, " exceeds the context length ", info.config.max_seq_len, " of ", o.model);
  llm::DataLoader data(o.data, o.batch_size, o.seq_len, info.config.vocab_size);
  llm::GPT2Model model(info.config);
  std::copy(w.begin(), w.end(), model.params());
  const float loss = evaluate(model, data, o.max_batches);
  std::printf("val_loss %.6f\nperplexity %.6f\n", loss, std::exp(static_cast<double>(loss)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // generate / export subcommands (weights component: host/generate.h, host/hf_gpt2.h)
  if (argc > 1 && std::string(argv[1]) == "generate")
    return llm::generate_main(argc - 1, argv + 1, llm::make_cpu_logits_model);
  if (argc > 1 && std::string(argv[1]) == "export") return llm::export_main(argc - 1, argv + 1);
  CLI::App app("gpt2_cpu — train and evaluate GPT-2 on the CPU (fp32 reference, llm.c file formats)");
  app.require_subcommand(1);
  llm::TrainOptions train_opts;
  llm::EvalOptions eval_opts;
  CLI::App* train = app.add_subcommand("train", "train on llm.c token shards (see gpt2_cpu train --help)");
  CLI::App* eval = app.add_subcommand("eval", "val loss + perplexity of a checkpoint on token shards");
  llm::add_train_options(*train, train_opts);
  llm::add_eval_options(*eval, eval_opts);
  int code = llm::parse_command_line(app, argc, argv);
  if (code >= 0) return code;
  try {
    return train->parsed() ? run_train(train_opts) : run_eval(eval_opts);
  } catch (const llm::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return llm::kExitBadInput;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: out of memory (try a smaller model, -b or -t)\n");
    return 1;
  }
}
