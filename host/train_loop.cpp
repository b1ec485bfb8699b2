// train_loop.cpp — the shared training driver (see train_loop.h).
#include "host/train_loop.h"

#include <dirent.h>
#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "host/binary_io.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/hf_gpt2.h"
#include "host/memory.h"
#include "host/philox.h"  // dropout_step_seed
#include "host/progress.h"
#include "host/run_guard.h"
#include "host/weights_check.h"
#include "host/sampling.h"
#include "host/tokenizer.h"

namespace llm {

namespace {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// --tokenizer-dir (or the default search) for HellaSwag, where a missing vocabulary is an error.
std::unique_ptr<Tokenizer> load_tokenizer_or_fail(const std::string& dir) {
  return std::make_unique<Tokenizer>(dir.empty() ? Tokenizer::from_default()
                                                 : Tokenizer::from_files(dir + "/encoder.json", dir + "/vocab.bpe"));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, int vocab_size) {
  try {
    auto tok = load_tokenizer_or_fail(dir);
    if (tok->vocab_size() != vocab_size) {
      std::printf("note: the GPT-2 vocabulary has %d tokens but the model %d; samples are printed as ids\n",
                  tok->vocab_size(), vocab_size);
      return nullptr;
    }
    return tok;
  } catch (const Error& e) {
    std::printf("note: no tokenizer (%s); samples are printed as token ids\n", e.what());
    return nullptr;
  }
}

void print_sample(const std::vector<int>& ids, const Tokenizer* tok) {
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

}  // namespace

// The run's banner (rank 0).
static void print_banner(const TrainOptions& o, const TrainProgram& program, const ModelSource& src, TrainModel& model,
                         const DataLoader& train, int world, int accum, int64_t max_steps, int64_t resume_step,
                         int64_t start_step) {
  const GPT2Config& cfg = src.config;
  const int64_t bt = static_cast<int64_t>(o.batch_size) * o.seq_len;
  std::printf("%s train | model %s | L=%d NH=%d C=%d maxT=%d V=%d | %zu parameters\n", program.name.c_str(),
              src.describe.c_str(), cfg.num_layers, cfg.num_heads, cfg.channels, cfg.max_seq_len, cfg.vocab_size,
              model.num_params());
  const std::string dev = model.describe();
  if (!dev.empty()) std::printf("%s\n", dev.c_str());
  if (world > 1)
    std::printf("data parallel: %d ranks | ZeRO-%d | each rank: B=%d T=%d accum=%d\n", world, o.zero_stage,
                o.batch_size, o.seq_len, accum);
  std::printf("data %s: %lld tokens, %lld batches/epoch | B=%d T=%d accum=%d -> %lld tokens/step | %lld steps | "
              "threads %d\n",
              o.train_data.c_str(), static_cast<long long>(train.total_tokens()),
              static_cast<long long>(train.windows_per_epoch() * world), o.batch_size, o.seq_len, accum * world,
              static_cast<long long>(bt * accum * world), static_cast<long long>(max_steps), omp_get_max_threads());
  if (resume_step >= 0) std::printf("resumed from %s at step %lld\n", o.output_dir.c_str(), (long long)start_step);
  else if (o.resume) std::printf("note: no complete checkpoint in %s; starting from scratch\n", o.output_dir.c_str());
  if (o.output_dir.empty()) std::printf("note: no -o/--output-dir: no checkpoints and no log file\n");
}

std::string step_file(const std::string& dir, const char* prefix, int64_t step, const char* ext) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "/%s_%08lld%s", prefix, static_cast<long long>(step), ext);
  return dir + buf;
}

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

// Names of the checkpoint files of a run (model_*.bin, state_*.bin, DONE_*) in dir; empty if none or no dir.
std::vector<std::string> checkpoint_files(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.rfind("DONE_", 0) == 0 || (n.rfind("model_", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".bin") ||
        (n.rfind("state_", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".bin"))
      names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
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

ModelSource resolve_model(const TrainOptions& o) {
  ModelSource src;
  std::string name = !o.init.empty() ? o.init : (!o.preset.empty() ? o.preset : "d6");
  if (!o.init.empty() && looks_like_model_path(o.init)) {  // llm.c .bin, model.safetensors or a HF directory
    src.checkpoint = o.init;
    src.config = read_model_config(o.init);
    src.describe = "checkpoint " + o.init;
  } else {
    if (name.rfind("gpt2:", 0) == 0) name = name.substr(5);  // llm.c descriptor "gpt2:d12"
    src.config = preset_config(name);
    src.describe = "preset " + name + " (random init, seed " + std::to_string(o.seed) + ")";
  }
  if (o.dropout >= 0.0f) src.config.dropout = o.dropout;
  return src;
}

std::string saved_resume_setting(const std::string& dir, const std::string& flag) {
  const int64_t latest = latest_done_step(dir);
  if (latest < 0) return "";
  std::istringstream in(read_train_state_settings(step_file(dir, "state", latest, ".bin")));
  for (std::string line; std::getline(in, line);)
    if (line.size() > flag.size() && line.compare(0, flag.size(), flag) == 0 && line[flag.size()] == '=')
      return line.substr(flag.size() + 1);
  return "";
}

uint64_t train_memory_bytes(const GPT2Config& c, int B, int T, bool checkpoints) {
  const uint64_t P = num_parameters(c);
  return 16 * P + 8 * activation_floats(c, B, T) + (checkpoints ? 12 * P : 0);
}

std::string run_fingerprint(const TrainOptions& o, const GPT2Config& c, int accum, int64_t max_steps,
                            const std::string& extra, int world_size) {
  (void)max_steps;  // not part of it: --resume -x N may extend a run (the schedule is recomputed over N)
  std::ostringstream s;
  s << "model maxT=" << c.max_seq_len << " V=" << c.vocab_size << " Vp=" << c.padded_vocab_size
    << " L=" << c.num_layers << " NH=" << c.num_heads << " C=" << c.channels << " qkv_bias=" << c.qkv_bias
    << " tied=" << c.tied_head << " dropout=" << c.dropout << " | "
    << "data " << o.train_data << " B=" << o.batch_size << " T=" << o.seq_len << " accum=" << accum << " | "
    << "schedule=" << o.lr_schedule << " lr=" << o.lr << " warmup=" << o.warmup
    << " min_lr_frac=" << o.min_lr_frac << " | "
    << "adamw wd=" << o.weight_decay << " wd_all=" << o.weight_decay_all << " betas=" << o.beta1 << "," << o.beta2
    << " eps=" << o.eps << " clip=" << o.grad_clip << " seed=" << o.seed;
  if (!extra.empty()) s << " | " << extra;
  if (world_size > 1 || o.zero_stage > 0) s << " | dp world=" << world_size << " zero=" << o.zero_stage;
  return s.str();
}

namespace {
// Fingerprints written before -x could change on resume held " steps=N"; it is not compared any more.
std::string without_steps(std::string fp) {
  const size_t at = fp.find("| steps=");
  if (at != std::string::npos) {
    const size_t end = fp.find(' ', at + 2);
    if (end != std::string::npos) fp.erase(at + 2, end - at - 1);
  }
  return fp;
}
// The data-parallel part of a fingerprint ("world=W zero=Z"; single process when absent).
std::string dp_part(const std::string& fingerprint) {
  const size_t at = fingerprint.rfind(" | dp ");
  return at == std::string::npos ? "world=1 zero=0" : fingerprint.substr(at + 6);
}
}  // namespace

float evaluate(LossModel& model, DataLoader& loader, int max_batches) {
  LocalComm one;
  return evaluate(model, loader, max_batches, one);
}

float evaluate(LossModel& model, DataLoader& loader, int max_batches, Comm& comm) {
  const int B = loader.B(), T = loader.T();
  int64_t n = loader.windows_per_epoch();
  if (max_batches > 0 && max_batches < n) n = max_batches;
  std::vector<int> x(static_cast<size_t>(B) * T), y(x.size());
  loader.reset();
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    loader.next_batch(x.data(), y.data());  // every rank walks the windows; each evaluates its own
    if (i % comm.world_size() == comm.rank()) sum += model.eval_loss(x.data(), y.data(), B, T);
  }
  return static_cast<float>(comm.all_reduce_sum_host(sum) / static_cast<double>(n));
}

int run_eval(const EvalOptions& e, const LossModelFactory& make) {
  validate_eval_options(e);
  LoadedModel m = load_model(e.model);
  if (e.seq_len > m.config.max_seq_len)
    fail("-t/--seq-len ", e.seq_len, " exceeds the context length ", m.config.max_seq_len, " of ", e.model);
  DataLoader data(e.data, e.batch_size, e.seq_len, m.config.vocab_size);
  GPT2Config cfg = m.config;
  cfg.dropout = 0.0f;  // evaluation never drops (and a device path that cannot drop need not refuse)
  const std::unique_ptr<LossModel> model = make(cfg, std::move(m.params), e);
  const float loss = evaluate(*model, data, e.max_batches);
  if (!std::isfinite(loss))  // never a "val_loss nan" with exit 0
    fail(e.model, ": the mean loss on ", e.data, " is ", loss, " (the forward pass overflows: damaged weights?)");
  std::printf("val_loss %.6f\nperplexity %.6f\n", loss, std::exp(static_cast<double>(loss)));
  return 0;
}

std::vector<int> generate(TrainModel& model, const GPT2Config& c, int n, int T, float temperature, uint64_t seed) {
  const int V = c.vocab_size;
  const int start = V > Tokenizer::kEot ? Tokenizer::kEot : 0;
  SamplingParams sp;
  sp.temperature = temperature;
  sp.seed = seed;
  Sampler sampler(sp);
  std::vector<int> ids = {start};
  for (int i = 0; i < n; i++) {
    const int len = std::min<int>(static_cast<int>(ids.size()), T);
    ids.push_back(sampler.sample(model.next_token_logits(ids.data() + ids.size() - len, len), V));
  }
  return std::vector<int>(ids.begin() + 1, ids.end());
}

LRSchedule make_schedule(const TrainOptions& o, int64_t max_steps) {
  LRSchedule s;
  s.kind = o.lr_schedule == "cosine" ? ScheduleKind::kCosine
           : o.lr_schedule == "linear" ? ScheduleKind::kLinear
                                       : ScheduleKind::kConstant;
  s.warmup_style = WarmupStyle::kLlmc;
  s.max_lr = o.lr;
  s.min_lr = o.lr * o.min_lr_frac;
  s.warmup_steps = o.warmup;
  s.total_steps = static_cast<int>(max_steps);
  return s;
}

int run_training(const TrainOptions& command_line, const TrainProgram& program, Comm& comm) {
  validate_train_options(command_line);
  // --resume continues the run in -o: every resumable setting the command line does not give comes from it
  // (so `--resume -o DIR -x N` extends a run), and the fingerprint below still refuses conflicting ones.
  TrainOptions o = command_line;
  if (o.resume) {
    const int64_t latest = latest_done_step(o.output_dir);
    if (latest >= 0) {
      const std::string spath = step_file(o.output_dir, "state", latest, ".bin");
      apply_resume_settings(&o, read_train_state_settings(spath), spath);
      validate_train_options(o);
    }
  }
  StopSignals signals;  // SIGTERM / SIGINT: finish the step, checkpoint, exit 0 (a second one: exit at once)
  if (o.threads > 0) omp_set_num_threads(o.threads);
  comm.set_timeout(o.collective_timeout);  // (MPI) a rank that stops must not leave the others waiting forever
  const int world = comm.world_size(), rank = comm.rank();
  const bool main_rank = rank == 0;  // the only rank that prints and writes files

  // ---- model config and data (all inputs are validated before anything is written) ----
  if (o.sample_every > 0 && o.tokenizer_dir.empty()) Tokenizer::check_env_dir();
  ModelSource src = resolve_model(o);
  const GPT2Config& cfg = src.config;
  const int B = o.batch_size, T = o.seq_len;
  if (T > cfg.max_seq_len)
    fail("-t/--seq-len ", T, " exceeds the context length ", cfg.max_seq_len, " of the model (", src.describe, ")");
  const int64_t bt = static_cast<int64_t>(B) * T;
  if (o.total_batch != -1 && o.total_batch % (bt * world) != 0)
    fail("-d/--total-batch ", o.total_batch, " is not divisible by B*T*ranks = ", B, "*", T, "*", world, " = ",
         bt * world, " (world size ", world, "); choose -d, -b, -t or the number of ranks so that it is");
  const int accum = static_cast<int>(o.total_batch == -1 ? 1 : o.total_batch / (bt * world));
  // train: rank r reads its B*T part of each window of world*B*T tokens; val: every rank walks the same windows
  DataLoader train(o.train_data, B, T, cfg.vocab_size, rank, world);
  std::unique_ptr<DataLoader> val;
  if (!o.val_data.empty() && o.val_every > 0) val = std::make_unique<DataLoader>(o.val_data, B, T, cfg.vocab_size);
  std::vector<HellaSwagItem> hellaswag;  // --hellaswag: read, tokenized and fitted to T before anything is written
  if (!o.hellaswag.empty() && o.hellaswag_every > 0) {
    const std::unique_ptr<Tokenizer> htok = load_tokenizer_or_fail(o.tokenizer_dir);
    hellaswag = load_hellaswag(o.hellaswag, *htok);
    fit_hellaswag(&hellaswag, T, cfg.vocab_size, o.hellaswag);
  }
  int64_t max_steps = o.max_steps;
  if (max_steps == -1) {
    max_steps = train.windows_per_epoch() / accum;
    if (max_steps == 0)
      fail(o.train_data, ": one epoch (", train.windows_per_epoch(), " batches of B*T*ranks=", bt * world,
           ") is shorter than one optimizer step of ", accum, " micro-batches; lower -d or give -x");
  }

  // ---- model + optimizer: refuse up front what would be OOM-killed later ----
  if (program.host_memory) {
    // ranks started on this machine (mpirun / torchrun export it) share its memory
    int local_ranks = 1;
    for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "LOCAL_WORLD_SIZE"})
      if (const char* v = std::getenv(var); v && world > 1 && std::atoi(v) > 1) {
        local_ranks = std::min(std::atoi(v), world);
        break;
      }
    const uint64_t need = train_memory_bytes(cfg, B, T, !o.output_dir.empty());
    const uint64_t avail = available_memory_bytes();
    if (need * local_ranks > avail) {
      const uint64_t P = num_parameters(cfg);
      fail("not enough memory for this run: ", src.describe, " has ", P, " parameters; weights, gradients and AdamW "
           "m and v need ", format_gib(16 * P), ", the activations of B=", B, " T=", T, " ",
           format_gib(8 * activation_floats(cfg, B, T)),
           o.output_dir.empty() ? std::string() : ", checkpoint copies " + format_gib(12 * P), " = ",
           format_gib(need), local_ranks > 1 ? " per rank, x " + std::to_string(local_ranks) + " ranks on this machine = " +
                                                   format_gib(need * local_ranks)
                                             : std::string(),
           ", but only ", format_gib(avail),
           " are available (MemAvailable / cgroup limit); use a smaller model, -b or -t");
    }
  }
  std::unique_ptr<TrainModel> model = program.make_model(cfg, o, comm);
  const std::string fp = run_fingerprint(o, cfg, accum, max_steps, model->fingerprint_extra(), world);
  const LRSchedule sched = make_schedule(o, max_steps);

  // A fresh run must not mix its checkpoints with another run's (checked again under the lock below).
  auto refuse_foreign_checkpoints = [&o](const std::vector<std::string>& found) {
    if (!found.empty() && !o.resume && !o.overwrite)
      fail(o.output_dir, ": already holds checkpoints of a run (", found.front(), found.size() > 1 ? ", ..." : "",
           "); continue it with --resume, or start over with --overwrite (deletes them), or choose another -o");
  };
  if (!o.output_dir.empty() && main_rank) refuse_foreign_checkpoints(checkpoint_files(o.output_dir));

  int64_t start_step = 0;
  const int64_t resume_step = o.resume ? latest_done_step(o.output_dir) : -1;
  if (world > 1) {  // every rank must continue from the same checkpoint (e.g. -o not on a shared filesystem)
    int64_t rank0_step = resume_step;
    comm.broadcast_host(&rank0_step, sizeof(rank0_step), 0);
    if (comm.all_reduce_sum_host(rank0_step != resume_step ? 1.0 : 0.0) > 0)
      fail(o.output_dir, ": the ranks see different latest checkpoints (rank 0: step ", rank0_step,
           rank0_step != resume_step ? ", rank " + std::to_string(rank) + ": step " + std::to_string(resume_step)
                                     : std::string(", another rank: not that one"),
           "; -1 = none); -o must be a directory every rank sees (a shared filesystem)");
  }
  if (resume_step >= 0) {
    const std::string mpath = step_file(o.output_dir, "model", resume_step, ".bin");
    const std::string spath = step_file(o.output_dir, "state", resume_step, ".bin");
    std::vector<float> w;
    CheckpointInfo info = load_checkpoint(mpath, &w);
    GPT2Config saved = info.config;
    saved.dropout = cfg.dropout;
    if (num_parameters(saved) != model->num_params() || saved.max_seq_len != cfg.max_seq_len ||
        saved.vocab_size != cfg.vocab_size || saved.num_heads != cfg.num_heads)
      fail(mpath, ": model shape differs from the one this command line asks for (", src.describe, ")");
    TrainState st = load_train_state(spath, model->num_params());
    if (dp_part(st.fingerprint) != dp_part(fp))
      fail(spath, ": was written by a data-parallel run with ", dp_part(st.fingerprint), " but this run has ",
           dp_part(fp), "; resume needs the same number of ranks (mpirun -np) and -z/--zero");
    if (without_steps(st.fingerprint) != fp)
      fail(spath, ": was written with different settings; resume needs the same model, data, batch and optimizer "
                  "flags.\n  saved:   ",
           st.fingerprint, "\n  current: ", fp);
    if (st.step != resume_step) fail(spath, ": holds step ", st.step, " but its name says ", resume_step);
    if (st.step > max_steps)
      fail("-x/--max-steps ", max_steps, " is below the step ", st.step, " of the checkpoint to resume (", spath,
           "); give a larger -x to extend the run");
    if (info.dtype == CheckpointDtype::kBf16 && main_rank)
      std::printf("warning: resuming from bf16 weights; the continuation is not bit-exact\n");
    model->set_weights(w);
    model->set_optimizer_state(st.m, st.v, st.step);
    train.set_position(st.loader);
    start_step = st.step;
  } else if (!src.checkpoint.empty()) {
    LoadedModel init = load_model(src.checkpoint);
    check_config_matches(src.checkpoint, cfg, init.config);  // the file must still be the model resolved above
    model->set_weights(init.params);
  } else {
    model->init_random(o.seed);
  }

  // ---- outputs (created only now that every input has been checked) ----
  std::string log_path;
  std::unique_ptr<OutputLock> lock;  // held until the run ends; the kernel drops it if the process dies
  if (!o.output_dir.empty() && main_rank) {
    make_dirs(o.output_dir);
    lock = std::make_unique<OutputLock>(o.output_dir);
    remove_stale_temporaries(o.output_dir);  // left by a writer that was killed (we hold the lock now)
    // what was checked before the lock must still hold: nobody wrote checkpoints in between
    const std::vector<std::string> found = checkpoint_files(o.output_dir);
    refuse_foreign_checkpoints(found);
    if (latest_done_step(o.output_dir) != resume_step && o.resume)
      fail(o.output_dir, ": its latest complete checkpoint changed while this run was starting (another trainer?)");
    log_path = o.output_dir + "/main.log";
    if (o.overwrite && !o.resume) {  // the previous run's files go: DONE markers first, so no half-deleted
      for (const std::string& n : found)  // checkpoint ever looks complete
        if (n.rfind("DONE_", 0) == 0) std::remove((o.output_dir + "/" + n).c_str());
      for (const std::string& n : found)
        if (n.rfind("DONE_", 0) != 0) std::remove((o.output_dir + "/" + n).c_str());
      std::remove(log_path.c_str());
    }
  }
  Progress progress(max_steps, log_path);  // used by rank 0 only
  if (main_rank) print_banner(o, program, src, *model, train, world, accum, max_steps, resume_step, start_step);
  auto tok = o.sample_every > 0 && main_rank ? load_tokenizer(o.tokenizer_dir, cfg.vocab_size) : nullptr;
  std::fflush(stdout);

  std::vector<int> x(bt), y(bt);
  std::vector<float> w, m, v;
  int bad_steps = 0;      // consecutive steps with a non-finite loss or gradient norm
  const bool deferred = model->defer_step_results();  // the model reads its loss and norm back once per step
  bool stopping = false;  // a SIGTERM / SIGINT reached some rank: checkpoint this step and exit 0
  for (int64_t step = start_step; step <= max_steps; step++) {
    const bool last = step == max_steps || stopping;
    const bool resumed_here = resume_step >= 0 && step == start_step;  // already done before the checkpoint
    if (val && !resumed_here && !stopping && (step % o.val_every == 0 || last)) {
      const float val_loss = evaluate(*model, *val, o.val_max_batches, comm);
      if (main_rank) progress.val(step, val_loss);
    }
    if (!hellaswag.empty() && !resumed_here && !stopping && (step % o.hellaswag_every == 0 || last)) {
      // every rank scores every item (the same numbers); rank 0 reports
      const HellaSwagResult r = evaluate_hellaswag(*model, hellaswag, B, T, false);
      if (main_rank) progress.hellaswag(step, static_cast<int64_t>(r.items.size()), r.acc(), r.acc_norm());
    }
    if (o.sample_every > 0 && main_rank && !resumed_here && !stopping && step > 0 &&
        (step % o.sample_every == 0 || last))
      print_sample(generate(*model, cfg, o.gen_tokens, T, o.temperature, o.seed + static_cast<uint64_t>(step)),
                   tok.get());
    const bool checkpoint_due = !o.output_dir.empty() && !resumed_here && step > start_step &&
                                (last || (o.checkpoint_every > 0 && step % o.checkpoint_every == 0));
    if (checkpoint_due && bad_steps > 0) {  // (the same on every rank) the model's last step was not finite
      if (last)
        fail("training ended with ", bad_steps, " non-finite step(s) in a row (up to step ", step,
             "); no final checkpoint written; lower -l/--lr");
      if (main_rank) std::printf("warning: no checkpoint at step %lld: its step was not finite\n", (long long)step);
    } else if (checkpoint_due) {
      TrainState st;
      model->get_weights(&w);                   // collective
      model->get_optimizer_state(&st.m, &st.v);  // collective
      // a checkpoint is complete only when every number in it is finite (whatever --allow-nonfinite says)
      const size_t bad_w = first_nonfinite(w.data(), w.size());
      if (bad_w != w.size() || first_nonfinite(st.m.data(), st.m.size()) != st.m.size() ||
          first_nonfinite(st.v.data(), st.v.size()) != st.v.size())
        fail("training diverged: after step ", step, " the ",
             bad_w != w.size() ? "weights" : "AdamW moments", " hold non-finite values; no checkpoint written (",
             latest_done_step(o.output_dir) >= 0 ? "the last complete one is step " +
                                                        std::to_string(latest_done_step(o.output_dir))
                                                  : std::string("none was written"),
             "); lower -l/--lr");
      if (main_rank) {
        save_checkpoint(step_file(o.output_dir, "model", step, ".bin"), cfg, w.data(),
                        o.checkpoint_bf16 ? CheckpointDtype::kBf16 : CheckpointDtype::kFp32);
        st.step = step;
        st.seed = o.seed;
        st.loader = train.position();  // the same on every rank: windows count world*B*T tokens
        st.fingerprint = fp;
        TrainOptions saved = o;
        saved.max_steps = max_steps;  // the resolved -x (-1 = one epoch)
        st.settings = resume_settings_text(saved);
        for (const auto& [flag, value] : program.settings) st.settings += flag + "=" + value + "\n";
        save_train_state(step_file(o.output_dir, "state", step, ".bin"), st);
        AtomicFile done(step_file(o.output_dir, "DONE", step, ""));
        done.commit();
        if (!stopping) std::printf("checkpoint: %s\n", step_file(o.output_dir, "model", step, ".bin").c_str());
      }
    }
    if (stopping) {
      if (main_rank) {
        const int sig = StopSignals::requested();
        const std::string by = sig ? std::string("stopped by ") + StopSignals::name(sig) : "stopped by a signal to another rank";
        if (o.output_dir.empty())
          std::printf("%s after step %lld (no -o/--output-dir: nothing saved)\n", by.c_str(), (long long)step);
        else
          std::printf("%s after step %lld: complete checkpoint %s; continue with --resume -o %s\n", by.c_str(),
                      (long long)step, step_file(o.output_dir, "model", step, ".bin").c_str(), o.output_dir.c_str());
        std::fflush(stdout);
      }
      return 0;
    }
    if (last) break;

    const double t0 = now_ms();
    model->zero_grad();
    double loss = 0;
    for (int micro = 0; micro < accum; micro++) {
      train.next_batch(x.data(), y.data());
      const uint32_t global_window = static_cast<uint32_t>(micro * world + rank);
      loss += model->train_micro_step(x.data(), y.data(), B, T,
                                      dropout_step_seed(o.seed, static_cast<uint64_t>(step), global_window),
                                      1.0f / static_cast<float>(accum), micro == accum - 1);
    }
    const float lr = sched(static_cast<int>(step));
    double norm = model->update(lr, step + 1, o.grad_clip);  // skips the update on a non-finite norm
    if (deferred) model->read_step_results(&loss, &norm);   // the step's one wait for the device
    loss = comm.all_reduce_sum_host(loss / accum) / world;
    const double ms = now_ms() - t0;
    const int64_t tokens = bt * accum * world;
    if (!std::isfinite(loss) || !std::isfinite(norm)) {  // the same values on every rank (all-reduced)
      bad_steps++;
      if (main_rank) {
        std::printf("warning: step %lld: loss %g, gradient norm %g: %s (%d of --max-bad-steps %d in a row)\n",
                    (long long)(step + 1), loss, norm,
                    std::isfinite(norm) ? "non-finite loss" : "update skipped", bad_steps, o.max_bad_steps);
        std::fflush(stdout);
      }
      if (bad_steps >= o.max_bad_steps)
        fail("training diverged: ", bad_steps, " steps in a row (up to step ", step + 1,
             ") had a non-finite loss or gradient norm; lower -l/--lr or raise --max-bad-steps");
    } else {
      bad_steps = 0;
      if (main_rank)
        progress.train_step(step + 1, static_cast<float>(loss), lr, static_cast<float>(norm), ms, tokens,
                            model->mfu_percent(ms, bt * accum));  // per rank: each rank has its own device
    }
    // a stop request on any rank stops every rank after the same step (one host scalar per step)
    stopping = StopSignals::requested() != 0;
    if (world > 1) stopping = comm.all_reduce_sum_host(stopping ? 1.0 : 0.0) > 0;
    if (step + 1 == max_steps) stopping = false;  // the run ends here anyway, with its val loss and sample
  }
  if (main_rank) {
    const long long steps = static_cast<long long>(max_steps - start_step);
    const std::string took = Progress::format_duration(progress.total_ms() / 1000.0);
    if (progress.mean_tok_per_s() > 0)
      std::printf("done: %lld steps in %s, %.0f tok/s average (excluding each session's first step)\n", steps,
                  took.c_str(), progress.mean_tok_per_s());
    else  // only the session's first step ran (it is left out of the average: warm-up)
      std::printf("done: %lld steps in %s\n", steps, took.c_str());
    const std::string extra = model->summary();
    if (!extra.empty()) std::printf("%s\n", extra.c_str());
  }
  return 0;
}

}  // namespace llm
