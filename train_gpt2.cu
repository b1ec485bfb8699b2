// train_gpt2.cu — the GPU trainer and evaluator (same CLI, data, checkpoints and logs as gpt2_cpu).
//
//   train_gpt2cu train [options]   everything `gpt2_cpu train` takes (host/cli.h), plus
//                                  --precision bf16|fp32   bf16 mixed precision (default; fp32 master weights and
//                                                          AdamW state) or plain fp32
//                                  -r, --recompute 0|1     1: recompute GELU in backward instead of storing it
//                                  --attention auto|flash|cudnn|portable   attention kernels (gpu/attention_path.h;
//                                                          default auto; the choice is printed in the banner)
//                                  --matmul auto|cublaslt|own, --tf32   linear layers (gpu/train_model.cuh
//                                                          resolve_matmul; a declined cuBLASLt call is an error)
//   train_gpt2cu eval --model M --data D [-b B -t T -m N] [--precision ...] [--attention ...]
//   train_gpt2cu hellaswag --model M --data hellaswag_val.jsonl [-b ITEMS] [--precision ...] [--attention ...]
//                                  HellaSwag acc / acc_norm (host/hellaswag_cmd.h)
//   train_gpt2cu generate --model M [--prompt P] ...   `gpt2_cpu generate`'s flags + --precision, --attention
//                                  (gpu/generate.cuh)
//   train_gpt2cu finetune-classify | classify | finetune-instruct ...   `gpt2_cpu`'s fine-tuning flags + --precision,
//                                  --attention
//                                  (cpu/finetune_main.h driver, gpu/finetune_gpu.cuh device model)
//
// The training loop itself is host/train_loop.h (shared with gpt2_cpu); this file picks the device and the
// precision. Built twice from this source: with nvcc into build/train_gpt2cu (cuBLASLt matmuls), and through the
// CUDA-on-CPU layer into build/train_gpt2cu_cpu (own matmul/attention kernels), which CI runs.
// Data parallel (one process per GPU): `mpirun -np N train_gpt2cu train ...`, or N processes with torchrun-style
// RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT (scripts/run_single_node.sh, run_multi_node_mpirun.sh,
// slurm_example.sbatch). Each rank uses GPU LOCAL_RANK; gradients go over NCCL (gpu/comm_nccl.cuh), whose id
// is handed out by MPI or over TCP. train_gpt2cu_cpu keeps "device" memory in host memory, so there the MPI
// backend (host/comm_mpi.h, mpirun only) does the same job. -z 1: ZeRO-1. Only rank 0 prints and writes files.
// Exit codes: 0 ok, 2 bad input (message "error: ..."), 2 also when no CUDA GPU is present.
#include <algorithm>
#include <cstdio>
#include <new>
#include <string>

#include "gpu/comm_nccl.cuh"  // (nvcc build only)
#include "gpu/finetune_gpu.cuh"  // finetune-classify, classify, finetune-instruct
#include "gpu/generate.cuh"  // generate subcommand
#include "gpu/train_model.cuh"
#include "host/checkpoint.h"
#include "host/cli.h"
#include "host/comm_mpi.h"
#include "host/data_loader.h"
#include "host/error.h"
#include "host/hellaswag_cmd.h"
#include "host/hf_gpt2.h"
#include "host/rank_env.h"
#include "host/train_loop.h"

namespace {

gpu::Precision parse_precision(const std::string& s) {
  if (s == "bf16") return gpu::Precision::kBf16;
  if (s == "fp32") return gpu::Precision::kFp32;
  llm::fail("--precision must be bf16 or fp32 (got '", s, "')");
}

// A real build with no usable GPU stops here with a pointer to the CPU program. local_rank: this process's GPU
// (one process per GPU on a node). The CPU layer has one "device" shared by all its ranks.
gpu::DeviceInfo require_device(int local_rank) {
#ifdef __CUDACC__
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    llm::fail("no CUDA GPU found; use build/gpt2_cpu (or build/train_gpt2cu_cpu, the same program on the CPU)");
  }
  if (local_rank >= count)
    llm::fail("local rank ", local_rank, " needs GPU ", local_rank, " but only ", count,
              " are visible (one process per GPU: check -np / the tasks per node / CUDA_VISIBLE_DEVICES)");
  CUDA_CHECK(cudaSetDevice(local_rank));
#else
  (void)local_rank;
#endif
  return gpu::device_info();
}

// The data-parallel group of this process. host receives the MPI backend when the NCCL id travels over MPI
// (it must outlive the NCCL communicator).
std::unique_ptr<llm::Comm> make_comm(const llm::RankEnv& env, double rendezvous_timeout_s,
                                     std::unique_ptr<llm::Comm>* host) {
#ifdef __CUDACC__
  if (env.world == 1) return std::make_unique<llm::LocalComm>();
  if (env.launcher == llm::RankEnv::Launcher::kMpi) *host = llm::make_host_comm(env);
  return std::make_unique<gpu::NcclComm>(env, host->get(), rendezvous_timeout_s);
#else
  (void)rendezvous_timeout_s;
  (void)host;
  return llm::make_host_comm(env);  // "device" buffers are host memory here: MPI (mpirun) does the collectives
#endif
}

int run_eval(const llm::EvalOptions& e, gpu::Precision precision, gpu::AttentionPath attention,
             kern::MatmulOptions matmul, const gpu::DeviceInfo& dev) {
  llm::validate_eval_options(e);
  const llm::LoadedModel m = llm::load_model(e.model);  // llm.c .bin, model.safetensors or a HF directory
  if (e.seq_len > m.config.max_seq_len)
    llm::fail("-t/--seq-len ", e.seq_len, " exceeds the context length ", m.config.max_seq_len, " of ", e.model);
  llm::DataLoader data(e.data, e.batch_size, e.seq_len, m.config.vocab_size);
  llm::TrainOptions o;
  o.batch_size = e.batch_size;
  o.seq_len = e.seq_len;
  llm::GPT2Config cfg = m.config;
  cfg.dropout = 0.0f;  // evaluation never drops: no reason to refuse --attention cudnn
  auto model = gpu::make_train_model(precision, cfg, o, false, dev, nullptr, 0, attention, matmul);
  std::fprintf(stderr, "%s\n", model->describe().c_str());  // stdout stays "val_loss ...\nperplexity ..."
  model->set_weights(m.params);
  const float loss = llm::evaluate(*model, data, e.max_batches);
  if (!std::isfinite(loss))  // never a "val_loss nan" with exit 0
    llm::fail(e.model, ": the mean loss on ", e.data, " is ", loss,
              " (the forward pass overflows: damaged weights?)");
  std::printf("val_loss %.6f\nperplexity %.6f\n", loss, std::exp(static_cast<double>(loss)));
  return 0;
}

// `train_gpt2cu hellaswag`: host/hellaswag_cmd.h with the device model at the evaluation's B x T.
int hellaswag_main(int argc, char** argv) {
  std::string precision = "bf16", attention = "auto";
  auto extra = [&](CLI::App& app) {
    app.add_option("--precision", precision, "bf16 (mixed precision) or fp32")->capture_default_str();
    app.add_option("--attention", attention, "auto, flash, cudnn or portable")->capture_default_str();
  };
  auto make = [&](const llm::LoadedModel& m, int B, int T) {
    llm::TrainOptions o;
    o.batch_size = B;
    o.seq_len = T;
    llm::GPT2Config cfg = m.config;
    cfg.dropout = 0.0f;  // evaluation never drops
    auto model = gpu::make_train_model(parse_precision(precision), cfg, o, false, require_device(0), nullptr, 0,
                                       gpu::parse_attention_path(attention));
    std::fprintf(stderr, "%s\n", model->describe().c_str());  // stdout stays gpt2_cpu's
    model->set_weights(m.params);
    return std::unique_ptr<llm::TokenLossModel>(std::move(model));
  };
  return llm::hellaswag_main(argc, argv, make, extra);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "hellaswag") return hellaswag_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "generate")  // host/generate.h loop + the device KV-cache model
    return gpu::generate_main(argc - 1, argv + 1, [] { require_device(0); });
  if (argc > 1) {  // the fine-tuning subcommands: cpu/finetune_main.h's driver + the device backend
    const std::string cmd = argv[1];
    if (cmd == "finetune-classify" || cmd == "classify" || cmd == "finetune-instruct")
      return gpu::finetune_main(cmd, argc - 1, argv + 1, [] { require_device(0); });
  }
  CLI::App app("train_gpt2cu — train and evaluate GPT-2 with CUDA (llm.c file formats; same flags as gpt2_cpu)");
  app.require_subcommand(1);
  llm::TrainOptions train_opts;
  llm::EvalOptions eval_opts;
  std::string precision = "bf16", attention = "auto", matmul = "auto";
  bool tf32 = false;
  int recompute = 0;
  CLI::App* train = app.add_subcommand("train", "train on llm.c token shards (see train_gpt2cu train --help)");
  CLI::App* eval = app.add_subcommand("eval", "val loss + perplexity of a checkpoint on token shards");
  llm::add_train_options(*train, train_opts);
  llm::add_eval_options(*eval, eval_opts);
  for (CLI::App* sub : {train, eval}) {
    sub->add_option("--precision", precision, "bf16 (mixed precision, fp32 master weights) or fp32")
        ->capture_default_str();
    sub->add_option("--attention", attention,
                    "auto (cudnn if built, bf16 and no dropout; else flash if bf16 and head size 64/128; else "
                    "portable), flash, cudnn or portable")
        ->capture_default_str();
    sub->add_option("--matmul", matmul,
                    "auto (cuBLASLt when built, and then a declined call is an error; else the own GEMM), cublaslt "
                    "or own (the own GEMM on purpose)")
        ->capture_default_str();
    sub->add_flag("--tf32", tf32, "fp32 only: matmuls on TF32 tensor cores (cuBLASLt; off by default for parity)");
  }
  train->add_option("-r,--recompute", recompute, "1 = recompute GELU in backward (saves L*B*T*4C activations)")
      ->capture_default_str();
  int code = llm::parse_command_line(app, argc, argv);
  if (code >= 0) return code;
  // Errors with several ranks: each failing rank says so (naming its rank); under mpirun MPI_Abort then stops
  // the others, which may be waiting for it in a collective.
  llm::RankEnv env;  // a single process until the environment says otherwise
  auto report = [&](const char* what, int exit_code) {
    std::fflush(stdout);
    if (env.world > 1) std::fprintf(stderr, "error: %s (rank %d of %d)\n", what, env.rank, env.world);
    else std::fprintf(stderr, "error: %s\n", what);
    std::fflush(stderr);
    llm::abort_other_ranks(exit_code);
    return exit_code;
  };
  try {
    if (train->parsed() && train_opts.resume) {  // a resume keeps the run's own flags unless given again
      auto inherit = [&](const char* flag, std::string* value) {
        if (std::find(train_opts.given.begin(), train_opts.given.end(), flag) != train_opts.given.end()) return;
        const std::string saved = llm::saved_resume_setting(train_opts.output_dir, flag);
        if (!saved.empty()) *value = saved;
      };
      std::string rec = std::to_string(recompute);
      inherit("--precision", &precision);
      inherit("--attention", &attention);
      inherit("--recompute", &rec);
      recompute = rec == "1" ? 1 : rec == "0" ? 0 : -1;
      std::string tf = tf32 ? "1" : "0";
      inherit("--matmul", &matmul);
      inherit("--tf32", &tf);
      tf32 = tf == "1";
    }
    const gpu::Precision prec = parse_precision(precision);
    const gpu::AttentionPath attn = gpu::parse_attention_path(attention);
    const kern::MatmulOptions mm = gpu::resolve_matmul(matmul, tf32, prec);
    if (recompute != 0 && recompute != 1) llm::fail("-r/--recompute must be 0 or 1 (got ", recompute, ")");
    if (eval->parsed()) return run_eval(eval_opts, prec, attn, mm, require_device(0));
    env = llm::detect_rank_env();
    const gpu::DeviceInfo dev = require_device(env.local_rank);
    std::unique_ptr<llm::Comm> host;
    std::unique_ptr<llm::Comm> comm = make_comm(env, train_opts.rendezvous_timeout, &host);
    llm::TrainProgram program;
    program.name = "train_gpt2cu";
#ifdef __CUDACC__
    program.host_memory = false;  // device memory: the allocator reports what does not fit
#endif
    program.make_model = [&](const llm::GPT2Config& cfg, const llm::TrainOptions& o, llm::Comm& c) {
      return gpu::make_train_model(prec, cfg, o, recompute == 1, dev, &c, o.zero_stage, attn, mm);
    };
    program.settings = {{"--precision", precision}, {"--attention", attention},
                        {"--recompute", std::to_string(recompute)}, {"--matmul", matmul}, {"--tf32", tf32 ? "1" : "0"}};
    return llm::run_training(train_opts, program, *comm);
  } catch (const llm::Error& e) {
    return report(e.what(), llm::kExitBadInput);
  } catch (const std::bad_alloc&) {
    return report("out of memory (try a smaller model, -b or -t)", 1);
  }
}
