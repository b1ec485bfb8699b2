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
//                                  --cuda-graph / --no-cuda-graph   capture the step into CUDA graphs and replay
//                                                          them (default on; gpu/step_graph.cuh; the end of the run
//                                                          prints "cuda graph: ... | host <x> ms per step")
//                                  --profile-step N        time step N's matmuls / attention / rest with CUDA events
//                                                          (that step runs eagerly; kernels/step_profile.cuh)
//   train_gpt2cu eval --model M --data D [-b B -t T -m N] [--precision ...] [--attention ...]
//   train_gpt2cu generate --model M [--prompt P] ...   `gpt2_cpu generate`'s flags + --precision, --attention
//                                  (gpu/generate.cuh)
//   train_gpt2cu finetune-classify | classify | finetune-instruct ...   `gpt2_cpu`'s fine-tuning flags + --precision,
//                                  --attention
//                                  (host/finetune_main.h driver, gpu/finetune_gpu.cuh device model)
//   train_gpt2cu hellaswag --model M --data hellaswag_val.jsonl [-b ITEMS] [--precision ...] [--attention ...]
//                                  HellaSwag acc / acc_norm (host/hellaswag_cmd.h)
//   train_gpt2cu export ...        gpt2_cpu's export          (--help lists every verb)
//
// The program shell (host/program.h) and every verb's driver are shared with gpt2_cpu (host/); this file wires
// the device models in and picks the device, the precision and the kernels. Built twice from this source: with
// nvcc into build/train_gpt2cu (cuBLASLt matmuls), and through the
// CUDA-on-CPU layer into build/train_gpt2cu_cpu (own matmul/attention kernels), which CI runs.
// Data parallel (one process per GPU): `mpirun -np N train_gpt2cu train ...`, or N processes with torchrun-style
// RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT (scripts/run_single_node.sh, run_multi_node_mpirun.sh,
// slurm_example.sbatch). Each rank uses GPU LOCAL_RANK; gradients go over NCCL (gpu/comm_nccl.cuh), whose id
// is handed out by MPI or over TCP. train_gpt2cu_cpu keeps "device" memory in host memory, so there the MPI
// backend (host/comm_mpi.h, mpirun only) does the same job. -z 1: ZeRO-1. Only rank 0 prints and writes files.
// Exit codes: 0 ok, 2 bad input (message "error: ..."), 2 also when no CUDA GPU is present.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gpu/comm_nccl.cuh"  // (nvcc build only)
#include "gpu/finetune_gpu.cuh"  // finetune-classify, classify, finetune-instruct
#include "gpu/generate.cuh"  // generate subcommand
#include "gpu/train_model.cuh"
#include "host/comm_mpi.h"
#include "host/error.h"
#include "host/hellaswag_cmd.h"
#include "host/hf_gpt2.h"  // export
#include "host/program.h"
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

}  // namespace

int main(int argc, char** argv) {
  llm::Program program("train_gpt2cu", "train, evaluate, run and fine-tune GPT-2 with CUDA (llm.c file formats; "
                       "the flags of gpt2_cpu)");
  program.set_abort_hook(llm::abort_other_ranks);
  // train and eval: --precision, --attention, --matmul, --tf32 (both), -r/--recompute (train)
  std::string precision = "bf16", attention = "auto", matmul = "auto";
  bool tf32 = false;
  int recompute = 0;
  bool cuda_graph = true;
  int profile_step = 0;
  llm::TrainOptions train_opts;
  CLI::App& train = llm::add_train_command(program, train_opts, [&] {
    if (train_opts.resume) {  // a resume keeps the run's own flags unless given again
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
    const llm::RankEnv env = llm::detect_rank_env();
    program.set_rank_env(env);  // error lines name the rank; under mpirun MPI_Abort then stops the others
    const gpu::DeviceInfo dev = require_device(env.local_rank);
    std::unique_ptr<llm::Comm> host;
    std::unique_ptr<llm::Comm> comm = make_comm(env, train_opts.rendezvous_timeout, &host);
    llm::TrainProgram p;
    p.name = "train_gpt2cu";
#ifdef __CUDACC__
    p.host_memory = false;  // device memory: the allocator reports what does not fit
#endif
    p.make_model = [&](const llm::GPT2Config& cfg, const llm::TrainOptions& o, llm::Comm& c) {
      return gpu::make_train_model(prec, cfg, o, recompute == 1, dev, &c, o.zero_stage, attn, mm, cuda_graph,
                                   profile_step);
    };
    p.settings = {{"--precision", precision}, {"--attention", attention}, {"--recompute", std::to_string(recompute)},
                  {"--matmul", matmul}, {"--tf32", tf32 ? "1" : "0"}};
    return llm::run_training(train_opts, p, *comm);
  });
  llm::EvalOptions eval_opts;
  CLI::App& eval = llm::add_eval_command(program, eval_opts, [&] {
    const gpu::Precision prec = parse_precision(precision);
    const gpu::AttentionPath attn = gpu::parse_attention_path(attention);
    const kern::MatmulOptions mm = gpu::resolve_matmul(matmul, tf32, prec);
    const gpu::DeviceInfo dev = require_device(0);
    return llm::run_eval(eval_opts, [&](const llm::GPT2Config& cfg, std::vector<float>&& w, const llm::EvalOptions& e) {
      llm::TrainOptions shape;
      shape.batch_size = e.batch_size;
      shape.seq_len = e.seq_len;
      auto model = gpu::make_forward_model(prec, cfg, shape, dev, attn, mm);
      std::fprintf(stderr, "%s\n", model->describe().c_str());  // stdout stays "val_loss ...\nperplexity ..."
      model->set_weights(w);
      return std::unique_ptr<llm::LossModel>(std::move(model));
    });
  });
  for (CLI::App* cmd : {&train, &eval}) {
    cmd->add_option("--precision", precision, "bf16 (mixed precision, fp32 master weights) or fp32")
        ->capture_default_str();
    cmd->add_option("--attention", attention,
                    "auto (cudnn if built, bf16 and no dropout; else flash if bf16 and head size 64/128; else "
                    "portable), flash, cudnn or portable")
        ->capture_default_str();
    cmd->add_option("--matmul", matmul,
                    "auto (cuBLASLt when built, and then a declined call is an error; else the own GEMM), cublaslt "
                    "or own (the own GEMM on purpose)")
        ->capture_default_str();
    cmd->add_flag("--tf32", tf32, "fp32 only: matmuls on TF32 tensor cores (cuBLASLt; off by default for parity)");
  }
  train.add_option("-r,--recompute", recompute, "1 = recompute GELU in backward (saves L*B*T*4C activations)")
      ->capture_default_str();
  train.add_flag("--cuda-graph,!--no-cuda-graph", cuda_graph,
                 "capture the training step into CUDA graphs and replay them (default on; off with data parallel "
                 "or dropout, and after a failed capture, with a message)");
  train.add_option("--profile-step", profile_step,
                   "N > 0: time step N of this run with CUDA events (it runs eagerly and waits) and print "
                   "'step profile (step N, eager): matmul ..% | attention ..% | other ..% of .. ms'; 0 = off")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  gpu::add_generate_command(program, [] { require_device(0); });  // + --precision, --attention
  llm::add_export_command(program);
  // hellaswag: the device model at the evaluation's B x T (only one verb is parsed: it shares train's strings)
  CLI::App& hellaswag = llm::add_hellaswag_command(program, [&](const llm::LoadedModel& m, int B, int T) {
    llm::TrainOptions o;
    o.batch_size = B;
    o.seq_len = T;
    llm::GPT2Config cfg = m.config;
    cfg.dropout = 0.0f;  // evaluation never drops
    auto model = gpu::make_forward_model(parse_precision(precision), cfg, o, require_device(0),
                                         gpu::parse_attention_path(attention));
    std::fprintf(stderr, "%s\n", model->describe().c_str());  // stdout stays gpt2_cpu's
    model->set_weights(m.params);
    return std::unique_ptr<llm::TokenLossModel>(std::move(model));
  });
  hellaswag.add_option("--precision", precision, "bf16 (mixed precision) or fp32")->capture_default_str();
  hellaswag.add_option("--attention", attention, "auto, flash, cudnn or portable")->capture_default_str();
  gpu::add_finetune_commands(program, [] { require_device(0); });  // + --precision, --attention
  return program.main(argc, argv);
}
