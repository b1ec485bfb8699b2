// gpt2_cpu.cpp — the CPU program: the shared program shell (host/program.h) wired to the fp32 reference (cpu/).
//
//   gpt2_cpu train | eval | generate | export | hellaswag | finetune-classify | classify | finetune-instruct
//                                                                             (--help lists them, one line each)
//
// Every verb's flags and driver live in host/ (train: host/train_loop.h, generate: host/generate.h, export:
// host/hf_gpt2.h, hellaswag: host/hellaswag_cmd.h, fine-tuning: the shared driver); this file only supplies the
// CPU models: GPT2Model + AdamW for train, GPT2Model's forward alone for eval and hellaswag, the KV-cache model
// for generate (--weights fp32|bf16|int8|q4), FinetuneGPT2 for the fine-tuning verbs. Resume is bit-exact for
// the same thread count.
// Data parallel: `mpirun -np N build/gpt2_cpu train ... [-z 1]` runs N ranks over MPI (host/comm_mpi.h), each
// with its share of every batch; gradients are averaged (ZeRO-0) or reduce-scattered with a sharded AdamW
// (ZeRO-1, cpu/dp_optimizer.h). Only rank 0 prints and writes files.
// Every bad input is an llm::Error: the shell prints "error: <message>" and exits with 2.
#include <omp.h>

#include <memory>
#include <string>
#include <vector>

#include "cpu/dp_optimizer.h"
#include "cpu/finetune_backend.h"  // finetune-classify, classify, finetune-instruct
#include "cpu/gpt2_infer.h"     // generate's KV-cache model
#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "host/comm_mpi.h"
#include "host/generate.h"
#include "host/hellaswag_cmd.h"
#include "host/hf_gpt2.h"  // export
#include "host/program.h"
#include "host/rank_env.h"
#include "host/train_loop.h"

namespace {

// Per-position losses (B,T) of one forward of the fp32 reference (HellaSwag scoring, host/hellaswag.h).
void forward_token_losses(llm::GPT2Model& model, float* losses, const int* x, const int* y, int B, int T) {
  model.forward(x, y, B, T);
  std::copy(model.losses(), model.losses() + static_cast<size_t>(B) * T, losses);
}

// eval and hellaswag need the forward pass only: the reference model alone (no gradients, no optimizer state).
class CpuLossModel final : public llm::LossModel, public llm::TokenLossModel {
 public:
  CpuLossModel(const llm::GPT2Config& cfg, const std::vector<float>& w) : model_(cfg) {
    std::copy(w.begin(), w.end(), model_.params());
  }
  float eval_loss(const int* x, const int* y, int B, int T) override { return model_.forward(x, y, B, T); }
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

}  // namespace

int main(int argc, char** argv) {
  llm::Program program("gpt2_cpu", "train, evaluate, run and fine-tune GPT-2 on the CPU (fp32 reference, llm.c "
                       "file formats)");
  program.set_abort_hook(llm::abort_other_ranks);
  llm::TrainOptions train_opts;
  llm::add_train_command(program, train_opts, [&] {
    // Errors under mpirun: every rank that fails says so (naming its rank), then MPI_Abort stops the others.
    const llm::RankEnv env = llm::detect_rank_env();
    program.set_rank_env(env);
    std::unique_ptr<llm::Comm> comm = llm::make_host_comm(env);
    llm::TrainProgram p;
    p.name = "gpt2_cpu";
    p.make_model = [](const llm::GPT2Config& cfg, const llm::TrainOptions& o, llm::Comm& c) {
      return std::unique_ptr<llm::TrainModel>(new CpuTrainModel(cfg, o, c));
    };
    return llm::run_training(train_opts, p, *comm);
  });
  llm::EvalOptions eval_opts;
  llm::add_eval_command(program, eval_opts, [&] {
    return llm::run_eval(eval_opts, [](const llm::GPT2Config& cfg, std::vector<float>&& w, const llm::EvalOptions& e) {
      if (e.threads > 0) omp_set_num_threads(e.threads);
      return std::unique_ptr<llm::LossModel>(new CpuLossModel(cfg, w));
    });
  });
  std::string weights = "fp32";  // generate --weights: the decode weights' format (cpu/infer_matrix.h)
  llm::add_generate_command(program, [&](const llm::GPT2Config& c, std::vector<float>&& params, bool kv) {
    return llm::make_cpu_logits_model(c, std::move(params), kv, llm::parse_weight_format(weights));
  }).add_option("--weights", weights,
                "decode weights: fp32, bf16 (half the bytes), int8 (per-row scales) or q4 (4 bits, blocks of 32)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8", "q4"}))
      ->capture_default_str();
  llm::add_export_command(program);
  llm::add_hellaswag_command(program, [](const llm::LoadedModel& m, int, int) {
    return std::unique_ptr<llm::TokenLossModel>(new CpuLossModel(m.config, m.params));
  });
  llm::add_finetune_commands(program, llm::cpu_finetune_program());  // FinetuneGPT2 (cpu/finetune_backend.h)
  return program.main(argc, argv);
}
