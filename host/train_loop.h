// train_loop.h — the training driver shared by gpt2_cpu (fp32 reference) and train_gpt2cu (CUDA).
//
// Why one driver: both programs must read the same flags, the same data in the same order, write the same
// checkpoints/logs and resume the same way, so everything that is not "run the model" lives here once:
// model resolution (checkpoint / preset), the settings fingerprint, gradient accumulation, the LR schedule,
// clipping, val loss, sampling, checkpoint cadence and exact resume, progress output.
// A program implements TrainModel (forward/backward/update on its device) and calls run_training().
//
// One optimizer step (llm.c's loop; accum = total_batch / (B·T·world) micro-batches per rank):
//   zero_grad; for each micro-batch m: train_micro_step(x, y, dropout seed of (seed, step, g), 1/accum, last)
//   norm = update(lr(step), t = step+1, grad_clip)   (clipping happens inside, llm.c style: scale = clip/norm)
// Data parallel (comm.world_size() ranks, host/comm.h): rank r's micro-batch m is global window g = m·world + r of
// the step's world·accum consecutive B×T windows, so N ranks read exactly (and only) what one rank with N times
// the accumulation reads; update() syncs the gradients (ZeRO-0 all-reduce or ZeRO-1 reduce-scatter, -z) and
// returns the global norm; losses and val losses are averaged over ranks; only rank 0 prints and writes files.
// Resume: a checkpoint at step s is model_s.bin (fp32 master weights unless --checkpoint-bf16), state_s.bin
// (AdamW m/v, loader position, seed, fingerprint) and an empty DONE_s written last; -y 1 continues from the
// highest DONE_s, bit for bit equal to the uninterrupted run.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/cli.h"
#include "host/comm.h"
#include "host/data_loader.h"
#include "host/gpt2_config.h"
#include "host/optimizer_config.h"  // LRSchedule
#include "host/hellaswag.h"
#include "host/train_state.h"

namespace llm {

// What evaluation needs of a model: the mean loss of one batch, no dropout, no gradients (the eval subcommands
// build only this, no gradients or optimizer state).
class LossModel {
 public:
  virtual ~LossModel() = default;
  virtual float eval_loss(const int* x, const int* y, int B, int T) = 0;
};

// The model side of a training run. token_losses (host/hellaswag.h) serves --hellaswag with the run's B x T batch.
class TrainModel : public LossModel, public TokenLossModel {
 public:
  virtual size_t num_params() const = 0;
  virtual std::string describe() const = 0;  // one line for the banner, e.g. "precision bf16 | NVIDIA H200"
  // Settings beyond the shared flags that a resume must also share (e.g. "precision=bf16"); "" if none.
  virtual std::string fingerprint_extra() const { return ""; }

  virtual void init_random(uint64_t seed) = 0;                  // GPT-2 init (GPT2Model::init_gpt2's numbers)
  virtual void set_weights(const std::vector<float>& w) = 0;    // fp32 (master) weights, gpt2_config.h order
  // The weights a checkpoint stores. Collective: every rank calls it and gets the full array.
  virtual void get_weights(std::vector<float>* w) = 0;
  // AdamW moments after `step` optimizer steps (resume) / for saving: full, unsharded arrays on every rank
  // (under ZeRO-1 set keeps this rank's shard, get gathers the shards). Collective.
  virtual void set_optimizer_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step) = 0;
  virtual void get_optimizer_state(std::vector<float>* m, std::vector<float>* v) = 0;

  virtual void zero_grad() = 0;
  // Forward + backward of one micro-batch, gradients accumulated with weight loss_scale; returns this rank's mean
  // loss. last_micro_step: the last micro-batch before update() (a model may start its gradient all-reduce
  // during that backward).
  virtual float train_micro_step(const int* x, const int* y, int B, int T, uint64_t dropout_seed, float loss_scale,
                                 bool last_micro_step) = 0;
  // Gradient sync over the ranks (mean of the ranks' gradients), clip (llm.c: grads *= clip/norm when
  // norm > clip; clip 0 = off) and AdamW with lr; t is 1-based. Collective.
  // Returns the global gradient norm before clipping (the same on every rank). A non-finite norm (NaN/Inf
  // gradient) skips the update: weights and AdamW state stay as they were (the driver counts a bad step).
  virtual double update(float lr, int64_t t, float grad_clip) = 0;
  // Deferred step results (a model that queues the step without waiting, the GPU trainer): when this returns true
  // (and from then on), train_micro_step and update return 0 and read_step_results, called once after update,
  // waits for the step and gives the sum of its micro-steps' losses and the gradient norm. Default: not deferred.
  virtual bool defer_step_results() { return false; }
  virtual void read_step_results(double* /*loss_sum*/, double* /*norm*/) {}
  // A line for the end of the run (e.g. the GPU trainer's CUDA graph use and host time per step); "" = none.
  virtual std::string summary() const { return ""; }
  // Logits (host, >= vocab_size floats) of the last position of ids[0..len), len <= T of the run.
  virtual const float* next_token_logits(const int* ids, int len) = 0;
  // Model FLOPs utilisation in percent of this step; < 0: unknown device ("n/a"); NaN: not printed at all.
  virtual double mfu_percent(double /*ms*/, int64_t /*tokens*/) const { return std::nan(""); }
};

// Program hooks: its name (banner, messages) and how to build its model for a config and a communicator
// (the model keeps a reference to comm for update() and the collective getters).
struct TrainProgram {
  std::string name;  // "gpt2_cpu", "train_gpt2cu"
  std::function<std::unique_ptr<TrainModel>(const GPT2Config&, const TrainOptions&, Comm&)> make_model;
  // The model's weights, gradients, AdamW state and activations live in host memory (gpt2_cpu, the CUDA-on-CPU
  // build): the run's need (train_memory_bytes) is checked against the machine's before anything is allocated.
  bool host_memory = true;
  // The program's own flags a resume inherits when not given again (e.g. {"--precision", "fp32"}): saved in the
  // state file next to the shared ones; read back with saved_resume_setting before the model is made.
  std::vector<std::pair<std::string, std::string>> settings;
};

// The value of `flag` saved with the latest complete checkpoint in dir ("" when none or not saved).
std::string saved_resume_setting(const std::string& dir, const std::string& flag);

// Bytes a training run needs in host memory: fp32 weights, gradients, AdamW m and v (16 B per parameter), the
// activations of one B×T micro-batch and their gradients, and, with -o, the copies a checkpoint makes (12 B per
// parameter). An estimate from llm.c's tensor list, not an exact count.
uint64_t train_memory_bytes(const GPT2Config& c, int B, int T, bool checkpoints);

// The full `train` subcommand: validates every input before writing anything, trains, checkpoints.
// Throws llm::Error on bad input (main prints "error: ..." and exits 2). Every rank of comm calls it.
int run_training(const TrainOptions& o, const TrainProgram& program, Comm& comm);

// ---- building blocks (also used by tests and the eval subcommands) ----

// The model a run starts from: -e an llm.c checkpoint, a model.safetensors or a HF directory (host/hf_gpt2.h
// load_model), or a preset (random init). --dropout applied.
struct ModelSource {
  GPT2Config config;
  std::string checkpoint;  // "" = preset
  std::string describe;
};
ModelSource resolve_model(const TrainOptions& o);

// Canonical text of everything a resume must share with the run that wrote the checkpoint: model, data, batch,
// schedule and AdamW settings, seed (not -x nor the val/sample/checkpoint cadence: a resume may extend a run). The data-parallel
// part (" | dp world=W zero=Z") is there only when W > 1 or Z > 0, so single-process states stay as they were.
std::string run_fingerprint(const TrainOptions& o, const GPT2Config& c, int accum, int64_t max_steps,
                            const std::string& extra, int world_size = 1);

// The LR schedule of the flags (-k, -l, -u, -q) over max_steps steps, llm.c warmup.
LRSchedule make_schedule(const TrainOptions& o, int64_t max_steps);

// Mean loss over up to max_batches windows from the start of `loader` (-1 = all).
float evaluate(LossModel& model, DataLoader& loader, int max_batches);
// The same over several ranks (collective): every rank has the same single-rank loader; window i is evaluated
// by rank i % world and the result is the mean over all windows, the value one rank alone would get.
float evaluate(LossModel& model, DataLoader& loader, int max_batches, Comm& comm);

// The `eval` subcommand: loads e.model (llm.c .bin, model.safetensors or a HF directory), checks -t against its
// context, builds the program's loss model (make: weights moved in, config with dropout 0) and prints
// "val_loss <x>" and "perplexity <x>" on stdout. A non-finite mean loss is an llm::Error.
using LossModelFactory =
    std::function<std::unique_ptr<LossModel>(const GPT2Config&, std::vector<float>&& params, const EvalOptions&)>;
int run_eval(const EvalOptions& e, const LossModelFactory& make);

// n sampled tokens after <|endoftext|> (context slides when longer than T).
std::vector<int> generate(TrainModel& model, const GPT2Config& c, int n, int T, float temperature, uint64_t seed);

// "<dir>/<prefix>_<step 8 digits><ext>", highest step with a DONE_ marker (-1 if none), mkdir -p.
std::string step_file(const std::string& dir, const char* prefix, int64_t step, const char* ext);
int64_t latest_done_step(const std::string& dir);
// model_*.bin, state_*.bin and DONE_* files in dir, sorted (empty when none or no such directory).
std::vector<std::string> checkpoint_files(const std::string& dir);
void make_dirs(const std::string& dir);

}  // namespace llm
