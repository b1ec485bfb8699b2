// gpt2_cpu.cpp — the CPU reference trainer and evaluator.
//
//   gpt2_cpu train [options]   train GPT-2 on llm.c token shards (random init from a preset, or -e weights: an
//                              llm.c .bin, model.safetensors or a HF directory), with val loss, samples,
//                              checkpoints and exact --resume
//   gpt2_cpu eval --model M --data D [-b B -t T -m MAXBATCHES]
//                              mean loss over consecutive B×T windows from the start of D (like llm.c's val
//                              loader); prints "val_loss <x>" and "perplexity <x>"
//   gpt2_cpu generate --model M [--prompt P] [--weights fp32|bf16|int8] ...   text generation, KV cache
//                              (host/generate.h, cpu/gpt2_infer.h); export / finetune-*: see main()
//   gpt2_cpu hellaswag --model M --data hellaswag_val.jsonl [-b ITEMS --max-items N]   HellaSwag acc / acc_norm
//                              (host/hellaswag_cmd.h)
//
// The training loop, checkpoints, resume and progress output are host/train_loop.h (shared with the GPU
// trainer train_gpt2.cu); this file plugs the fp32 reference model (cpu/) into it. Resume is bit-exact for the
// same thread count.
// Data parallel: `mpirun -np N build/gpt2_cpu train ... [-z 1]` runs N ranks over MPI (host/comm_mpi.h), each
// with its share of every batch; gradients are averaged (ZeRO-0) or reduce-scattered with a sharded AdamW
// (ZeRO-1, cpu/dp_optimizer.h). Only rank 0 prints and writes files.
// Every bad input is an llm::Error: main prints "error: <message>" and exits with 2.
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <new>

#include "cpu/finetune_main.h"  // finetune: finetune-classify, classify, finetune-instruct
#include "cpu/gpt2_infer.h"  // weights: generate subcommand
#include "cpu/dp_optimizer.h"
#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "host/checkpoint.h"
#include "host/cli.h"
#include "host/comm_mpi.h"
#include "host/data_loader.h"
#include "host/error.h"
#include "host/gpt2_config.h"
#include "host/hellaswag_cmd.h"  // hellaswag subcommand
#include "host/hf_gpt2.h"  // weights: export subcommand
#include "host/rank_env.h"
#include "host/train_loop.h"

namespace {

using llm::fail;

// Per-position losses (B,T) of one forward of the fp32 reference (HellaSwag scoring, host/hellaswag.h).
void forward_token_losses(llm::GPT2Model& model, float* losses, const int* x, const int* y, int B, int T) {
  model.forward(x, y, B, T);
  std::copy(model.losses(), model.losses() + static_cast<size_t>(B) * T, losses);
}

// `gpt2_cpu hellaswag`: the reference model alone (no optimizer state).
class CpuLossModel final : public llm::TokenLossModel {
 public:
  explicit CpuLossModel(const llm::LoadedModel& m) : model_(m.config) {
    std::copy(m.params.begin(), m.params.end(), model_.params());
  }
  void token_losses(float* losses, const int* x, const int* y, int B, int T) override {
    forward_token_losses(model_, losses, x, y, B, T);
  }
  bool any_batch_shape() const override { return true; }  // activations follow the batch's B x T

 private:
  llm::GPT2Model model_;
};

// The fp32 reference model (cpu/) behind the shared training driver (host/train_loop.h).
class CpuTrainModel final : public llm::TrainModel {
 public:
  CpuTrainModel(const llm::GPT2Config& cfg, const llm::TrainOptions& o, llm::Comm& comm)
      : model_(cfg), opt_(cfg, adamw(o), comm, o.zero_stage) {}

  size_t num_params() const override { return model_.num_params(); }
  std::string describe() const override { return ""; }
  void init_random(uint64_t seed) override { model_.init_gpt2(seed); }
  void set_weights(const std::vector<float>& w) override { std::copy(w.begin(), w.end(), model_.params()); }
  void get_weights(std::vector<float>* w) override { w->assign(model_.params(), model_.params() + num_params()); }
  void set_optimizer_state(const std::vector<float>& m, const std::vector<float>& v, int64_t) override {
    opt_.set_state(m, v);
  }
  void get_optimizer_state(std::vector<float>* m, std::vector<float>* v) override { opt_.get_state(m, v); }
  float eval_loss(const int* x, const int* y, int B, int T) override { return model_.forward(x, y, B, T); }
  void token_losses(float* losses, const int* x, const int* y, int B, int T) override {
    forward_token_losses(model_, losses, x, y, B, T);
  }
  void zero_grad() override { model_.zero_grad(); }
  // (the CPU model syncs all gradients in update(); it does not overlap communication with backward)
  float train_micro_step(const int* x, const int* y, int B, int T, uint64_t dropout_seed, float loss_scale,
                         bool /*last_micro_step*/) override {
    const float loss = model_.forward(x, y, B, T, llm::TrainFlags{true, dropout_seed});
    model_.backward(loss_scale);
    return loss;
  }
  double update(float lr, int64_t t, float grad_clip) override {
    return opt_.step(model_, lr, static_cast<int>(t), grad_clip);
  }
  const float* next_token_logits(const int* ids, int len) override {
    model_.forward(ids, nullptr, 1, len);
    return model_.logits() + static_cast<size_t>(len - 1) * model_.config().padded_vocab_size;
  }

 private:
  static llm::AdamWConfig adamw(const llm::TrainOptions& o) {
    llm::AdamWConfig hp;
    hp.beta1 = o.beta1;
    hp.beta2 = o.beta2;
    hp.eps = o.eps;
    hp.weight_decay = o.weight_decay;
    hp.decay = o.weight_decay_all ? llm::DecayMode::kAll : llm::DecayMode::kMatrices;
    return hp;
  }
  llm::GPT2Model model_;
  llm::DpAdamW opt_;
};

int run_train(const llm::TrainOptions& o, llm::Comm& comm) {
  llm::TrainProgram program;
  program.name = "gpt2_cpu";
  program.make_model = [](const llm::GPT2Config& cfg, const llm::TrainOptions& opts, llm::Comm& c) {
    return std::unique_ptr<llm::TrainModel>(new CpuTrainModel(cfg, opts, c));
  };
  return llm::run_training(o, program, comm);
}

int run_eval(const llm::EvalOptions& o) {
  llm::validate_eval_options(o);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  llm::LoadedModel m = llm::load_model(o.model);  // llm.c .bin, model.safetensors or a HF directory
  if (o.seq_len > m.config.max_seq_len)
    fail("-t/--seq-len ", o.seq_len, " exceeds the context length ", m.config.max_seq_len, " of ", o.model);
  llm::DataLoader data(o.data, o.batch_size, o.seq_len, m.config.vocab_size);
  llm::TrainOptions shape;
  llm::LocalComm one;
  CpuTrainModel model(m.config, shape, one);
  model.set_weights(m.params);
  const float loss = llm::evaluate(model, data, o.max_batches);
  if (!std::isfinite(loss))  // never a "val_loss nan" with exit 0
    fail(o.model, ": the mean loss on ", o.data, " is ", loss, " (the forward pass overflows: damaged weights?)");
  std::printf("val_loss %.6f\nperplexity %.6f\n", loss, std::exp(static_cast<double>(loss)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // generate / export subcommands (weights component: host/generate.h, host/hf_gpt2.h)
  if (argc > 1 && std::string(argv[1]) == "generate")
    return llm::cpu_generate_main(argc - 1, argv + 1);  // + --weights fp32/bf16/int8
  if (argc > 1 && std::string(argv[1]) == "export") return llm::export_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "hellaswag")  // host/hellaswag_cmd.h with the reference model
    return llm::hellaswag_main(argc - 1, argv + 1, [](const llm::LoadedModel& m, int, int) {
      return std::unique_ptr<llm::TokenLossModel>(new CpuLossModel(m));
    });
  // fine-tuning subcommands (finetune component: cpu/finetune_main.h)
  if (argc > 1 && std::string(argv[1]) == "finetune-classify") return llm::finetune_classify_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "classify") return llm::classify_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "finetune-instruct") return llm::finetune_instruct_main(argc - 1, argv + 1);
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
  // Errors under mpirun: every rank that fails says so (naming its rank), then MPI_Abort stops the others,
  // which may be waiting for it in a collective.
  llm::RankEnv env;  // single process until the environment says otherwise
  auto report = [&](const char* what, int exit_code) {
    std::fflush(stdout);
    if (env.world > 1)
      std::fprintf(stderr, "error: %s (rank %d of %d)\n", what, env.rank, env.world);
    else
      std::fprintf(stderr, "error: %s\n", what);
    std::fflush(stderr);
    llm::abort_other_ranks(exit_code);
    return exit_code;
  };
  try {
    if (!train->parsed()) return run_eval(eval_opts);
    env = llm::detect_rank_env();
    std::unique_ptr<llm::Comm> comm = llm::make_host_comm(env);
    return run_train(train_opts, *comm);
  } catch (const llm::Error& e) {
    return report(e.what(), llm::kExitBadInput);
  } catch (const std::bad_alloc&) {
    return report("out of memory (try a smaller model, -b or -t)", 1);
  }
}
