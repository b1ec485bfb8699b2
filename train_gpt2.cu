// train_gpt2.cu — the GPU trainer and evaluator (same CLI, data, checkpoints and logs as gpt2_cpu).
//
//   train_gpt2cu train [options]   everything `gpt2_cpu train` takes (host/cli.h), plus
//                                  --precision bf16|fp32   bf16 mixed precision (default; fp32 master weights and
//                                                          AdamW state) or plain fp32
//                                  -r, --recompute 0|1     1: recompute GELU in backward instead of storing it
//   train_gpt2cu eval --model M --data D [-b B -t T -m N] [--precision ...]
//
// The training loop itself is host/train_loop.h (shared with gpt2_cpu); this file picks the device and the
// precision. Built twice from this source: with nvcc into build/train_gpt2cu (cuBLASLt matmuls), and through the
// CUDA-on-CPU layer into build/train_gpt2cu_cpu (own matmul/attention kernels), which CI runs.
// Exit codes: 0 ok, 2 bad input (message "error: ..."), 2 also when no CUDA GPU is present.
#include <cstdio>
#include <new>
#include <string>

#include "gpu/train_model.cuh"
#include "host/checkpoint.h"
#include "host/cli.h"
#include "host/data_loader.h"
#include "host/error.h"
#include "host/train_loop.h"

namespace {

gpu::Precision parse_precision(const std::string& s) {
  if (s == "bf16") return gpu::Precision::kBf16;
  if (s == "fp32") return gpu::Precision::kFp32;
  llm::fail("--precision must be bf16 or fp32 (got '", s, "')");
}

// A real build with no usable GPU stops here with a pointer to the CPU program.
gpu::DeviceInfo require_device() {
#ifdef __CUDACC__
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    llm::fail("no CUDA GPU found; use build/gpt2_cpu (or build/train_gpt2cu_cpu, the same program on the CPU)");
  }
  CUDA_CHECK(cudaSetDevice(0));
#endif
  return gpu::device_info();
}

int run_eval(const llm::EvalOptions& e, gpu::Precision precision, const gpu::DeviceInfo& dev) {
  llm::validate_eval_options(e);
  std::vector<float> w;
  const llm::CheckpointInfo info = llm::load_checkpoint(e.model, &w);
  if (e.seq_len > info.config.max_seq_len)
    llm::fail("-t/--seq-len ", e.seq_len, " exceeds the context length ", info.config.max_seq_len, " of ", e.model);
  llm::DataLoader data(e.data, e.batch_size, e.seq_len, info.config.vocab_size);
  llm::TrainOptions o;
  o.batch_size = e.batch_size;
  o.seq_len = e.seq_len;
  auto model = gpu::make_train_model(precision, info.config, o, false, dev);
  model->set_weights(w);
  const float loss = llm::evaluate(*model, data, e.max_batches);
  std::printf("val_loss %.6f\nperplexity %.6f\n", loss, std::exp(static_cast<double>(loss)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("train_gpt2cu — train and evaluate GPT-2 with CUDA (llm.c file formats; same flags as gpt2_cpu)");
  app.require_subcommand(1);
  llm::TrainOptions train_opts;
  llm::EvalOptions eval_opts;
  std::string precision = "bf16";
  int recompute = 0;
  CLI::App* train = app.add_subcommand("train", "train on llm.c token shards (see train_gpt2cu train --help)");
  CLI::App* eval = app.add_subcommand("eval", "val loss + perplexity of a checkpoint on token shards");
  llm::add_train_options(*train, train_opts);
  llm::add_eval_options(*eval, eval_opts);
  for (CLI::App* sub : {train, eval})
    sub->add_option("--precision", precision, "bf16 (mixed precision, fp32 master weights) or fp32")
        ->capture_default_str();
  train->add_option("-r,--recompute", recompute, "1 = recompute GELU in backward (saves L*B*T*4C activations)")
      ->capture_default_str();
  int code = llm::parse_command_line(app, argc, argv);
  if (code >= 0) return code;
  try {
    const gpu::Precision prec = parse_precision(precision);
    if (recompute != 0 && recompute != 1) llm::fail("-r/--recompute must be 0 or 1 (got ", recompute, ")");
    const gpu::DeviceInfo dev = require_device();
    if (eval->parsed()) return run_eval(eval_opts, prec, dev);
    llm::TrainProgram program;
    program.name = "train_gpt2cu";
    // one process for now (the NCCL / MPI data-parallel wiring is the GPU side's part of issue #5)
    llm::LocalComm comm;
    program.make_model = [&](const llm::GPT2Config& cfg, const llm::TrainOptions& o, llm::Comm&) {
      return gpu::make_train_model(prec, cfg, o, recompute == 1, dev);
    };
    return llm::run_training(train_opts, program, comm);
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
