// test_trainer_graph.cu — the GPU trainer's step captured into CUDA graphs and replayed (gpu/step_graph.cuh), on the
// CUDA-on-CPU layer, whose fake runtime records a captured stream, replays it, and refuses what capture forbids
// (cuda_cpu/cucpu_graph.cpp):
//   * a run whose step pieces are captured at step 2 and replayed afterwards gives the same losses, gradient norms,
//     weights and AdamW state, bit for bit, as the eager run (fp32 and bf16, 2 accumulated micro-steps, clipping);
//   * the step is captured under the layer's rules: a synchronisation or a pageable copy inside it aborts at the
//     call, a capture CUDA would refuse at its end switches the graphs off with a message and runs eagerly;
//   * the program: --cuda-graph and --no-cuda-graph write identical checkpoints, and the end-of-run line says
//     whether graphs were used and the host time per step;
//   * --profile-step N: step N runs eagerly under CUDA events (kernels/step_profile.cuh), the run's checkpoints stay
//     bit-identical, and the last line carries the matmul / attention / other split of that step.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host_test_util.h"

#include "gpu/train_model.cuh"

namespace {

llm::TrainOptions small_run() {
  llm::TrainOptions o;
  o.batch_size = 2;
  o.seq_len = 16;
  o.weight_decay = 0.1f;
  o.grad_clip = 0.5f;  // the tiny model's first norms are above it: the clip factor comes from the device norm
  o.seed = 77;
  return o;
}

std::vector<int> tokens(std::mt19937& rng, int n, int V) {
  std::vector<int> t(n);
  for (int& x : t) x = (int)(rng() % (uint32_t)V);
  return t;
}

struct Run {
  std::vector<double> losses, norms;
  std::vector<float> w, m, v;
};

// `steps` optimizer steps of 2 micro-steps each; graphed: --cuda-graph with deferred results (the program's way),
// else eager with the synchronous returns (the tests' way).
template <class floatX>
Run train(bool graphed, int steps, std::string* status = nullptr) {
  const llm::GPT2Config cfg = llm::preset_config("tiny");
  const llm::TrainOptions o = small_run();
  gpu::GpuTrainModel<floatX> model(cfg, o, false, gpu::device_info(), nullptr, 0, gpu::AttentionPath::kPortable,
                                   kern::MatmulOptions{}, graphed);
  model.init_random(o.seed);
  if (graphed) EXPECT_TRUE(model.defer_step_results());
  std::mt19937 rng(5);
  const int BT = o.batch_size * o.seq_len, V = cfg.vocab_size;
  const std::vector<int> x[2] = {tokens(rng, BT, V), tokens(rng, BT, V)}, y[2] = {tokens(rng, BT, V), tokens(rng, BT, V)};
  Run r;
  for (int step = 0; step < steps; step++) {  // the same two micro-batches every step: the loss must fall
    model.zero_grad();
    double loss = 0, norm = 0;
    for (int micro = 0; micro < 2; micro++)
      loss += model.train_micro_step(x[micro].data(), y[micro].data(), o.batch_size, o.seq_len, 0, 0.5f, micro == 1);
    norm = model.update(1e-3f * (float)(step + 1), step + 1, o.grad_clip);  // a new lr every step
    if (graphed) model.read_step_results(&loss, &norm);
    r.losses.push_back(loss);
    r.norms.push_back(norm);
  }
  model.get_weights(&r.w);
  model.get_optimizer_state(&r.m, &r.v);
  if (status) *status = model.graphs().status();
  return r;
}

template <class floatX>
void expect_replay_is_eager() {
  const int steps = 6;
  std::string status;
  const Run eager = train<floatX>(false, steps), graphed = train<floatX>(true, steps, &status);
  // step 1 eager (warm-up), step 2 captures 3 pieces (2 micro-step kinds + update) and launches them, 3..6 replay
  EXPECT_EQ(status.rfind("on: 3 graphs", 0), 0u) << status;
  EXPECT_NE(status.find(", 15 launches"), std::string::npos) << status;
  ASSERT_EQ(eager.losses.size(), (size_t)steps);
  for (int s = 0; s < steps; s++) {
    EXPECT_EQ(eager.losses[s], graphed.losses[s]) << "step " << s + 1;
    EXPECT_EQ(eager.norms[s], graphed.norms[s]) << "step " << s + 1;
  }
  EXPECT_GT(eager.norms[0], small_run().grad_clip) << "the run should exercise clipping";
  EXPECT_LT(eager.losses[steps - 1], eager.losses[0]) << "the steps should train";
  EXPECT_TRUE(eager.w == graphed.w) << "weights differ";
  EXPECT_TRUE(eager.m == graphed.m && eager.v == graphed.v) << "AdamW state differs";
}

// The program tests' run: a 5-step tiny bf16 run (checkpoint at step 5) on two token shards in a fresh directory.
const std::string kProgramRun = "'" TRAIN_GPT2CU_BIN "' train --preset tiny -i train.bin -j val.bin -b 2 -t 16 -d 64 "
                                "-s 0 -v 3 -m 2 -l 3e-3 -u 2 -x 5 -n 5 --precision bf16 --dropout 0 ";
std::string program_dir() {
  const std::string dir = host_test::temp_dir();
  host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(3000, 1));
  host_test::write_shard(dir + "/val.bin", host_test::lcg_tokens(400, 2));
  return dir;
}
// Output folders a and b hold the same step-5 model and optimizer state, byte for byte.
void expect_same_checkpoints(const std::string& dir, const std::string& a, const std::string& b) {
  const auto model = host_test::read_bytes(dir + "/" + a + "/model_00000005.bin");
  ASSERT_GT(model.size(), 1024u);
  EXPECT_TRUE(model == host_test::read_bytes(dir + "/" + b + "/model_00000005.bin"));
  EXPECT_TRUE(host_test::read_bytes(dir + "/" + a + "/state_00000005.bin") ==
              host_test::read_bytes(dir + "/" + b + "/state_00000005.bin"));
}

}  // namespace

TEST(TrainerGraph, ReplayedStepsEqualEagerFp32) { expect_replay_is_eager<float>(); }
TEST(TrainerGraph, ReplayedStepsEqualEagerBf16) { expect_replay_is_eager<__nv_bfloat16>(); }

// What capture forbids, inside a captured step piece, is caught: the synchronous API of the model (it reads the
// loss / norm back) aborts at its cudaStreamSynchronize; a pageable batch copy aborts at its cudaMemcpyAsync.
TEST(TrainerGraphDeathTest, ASynchronisationInsideTheStepIsRefused) {
  const llm::GPT2Config cfg = llm::preset_config("tiny");
  const llm::TrainOptions o = small_run();
  gpu::GpuTrainModel<float> model(cfg, o, false, gpu::device_info());
  model.init_random(o.seed);
  model.zero_grad();  // a step's first call: allocates the lazy gradients (never inside a capture)
  std::mt19937 rng(1);
  const std::vector<int> x = tokens(rng, 32, cfg.vocab_size), y = tokens(rng, 32, cfg.vocab_size);
  cudaStream_t s = model.model().stream();
  EXPECT_DEATH(
      {
        CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        model.train_micro_step(x.data(), y.data(), 2, 16, 0, 1.0f, true);  // returns the loss: waits for it
      },
      "operation not permitted when stream is capturing.*cudaStreamSynchronize");
  EXPECT_DEATH(
      {
        CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        model.update(1e-3f, 1, 1.0f);  // the synchronous update reads the norm
      },
      "operation not permitted when stream is capturing.*cudaStreamSynchronize");
  int* scratch = nullptr;
  CUDA_CHECK(cudaMalloc(&scratch, kern::encoder_backward_scratch_ints(2, 16) * sizeof(int)));
  EXPECT_DEATH(
      {
        CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        // the host-planned embedding backward copies its plan from pageable memory (the step stages it instead)
        kern::encoder_backward(model.model().grads(), model.model().grads(), scratch,
                               (const float*)model.model().params(), x.data(), 2, 16, cfg.channels, s);
      },
      "operation not permitted when stream is capturing.*cudaMemcpyAsync");
  CUDA_CHECK(cudaFree(scratch));
}

// A capture that fails only at its end (here: a forked stream that never joins back) switches the graphs off with
// a message and runs the piece eagerly, once.
TEST(TrainerGraph, AFailedCaptureFallsBackToEager) {
  cudaStream_t s, side;
  CUDA_CHECK(cudaStreamCreate(&s));
  CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  cudaEvent_t fork;
  CUDA_CHECK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, sizeof(int)));
  int runs_on_host = 0;
  gpu::StepGraphs graphs(s, true, "");
  auto piece = [&] {
    runs_on_host++;
    CUDA_CHECK(cudaEventRecord(fork, s));
    CUDA_CHECK(cudaStreamWaitEvent(side, fork, 0));
    CUDA_CHECK(cudaMemsetAsync(d, runs_on_host, sizeof(int), side));  // never joined back into s
  };
  graphs.run(7, piece);  // warm-up: eager
  testing::internal::CaptureStderr();
  graphs.run(7, piece);  // capture fails at its end -> eager
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("warning: cuda graph: capture failed: cudaErrorStreamCaptureUnjoined"), std::string::npos) << err;
  EXPECT_FALSE(graphs.on());
  EXPECT_EQ(graphs.status().rfind("off (capture failed", 0), 0u) << graphs.status();
  EXPECT_EQ(runs_on_host, 3);  // warm-up, the failed capture, the eager rerun
  int h = 0;
  CUDA_CHECK(cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost));
  EXPECT_EQ(h, 0x03030303);  // the eager rerun's memset (the captured one never ran)
  graphs.run(7, piece);
  EXPECT_EQ(runs_on_host, 4);
  CUDA_CHECK(cudaFree(d));
  CUDA_CHECK(cudaEventDestroy(fork));
  CUDA_CHECK(cudaStreamDestroy(side));
  CUDA_CHECK(cudaStreamDestroy(s));
}

// The program: the same run with and without --cuda-graph writes identical checkpoints and logs; the last line says
// what was used (and why not, with dropout).
TEST(TrainerGraph, ProgramWithAndWithoutGraphsIsBitIdentical) {
  const std::string dir = program_dir();
  const std::string flags = kProgramRun;
  const host_test::Result g = host_test::run_in_dir(dir, flags + "-o graph");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("cuda graph: on: 3 graphs"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("| host "), std::string::npos) << g.out;
  const host_test::Result e = host_test::run_in_dir(dir, flags + "--no-cuda-graph -o eager");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("cuda graph: off (--no-cuda-graph)"), std::string::npos) << e.out;
  expect_same_checkpoints(dir, "graph", "eager");
  const host_test::Result d = host_test::run_in_dir(dir, "'" TRAIN_GPT2CU_BIN "' train --preset tiny -i train.bin "
                                                    "-j val.bin -b 2 -t 16 -x 2 -s 0 --dropout 0.1");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("cuda graph: off (dropout"), std::string::npos) << d.out;
}

// --profile-step 3: the split is printed, its parts are positive and add up to the step (each share is printed to
// 0.1 %, so three rounded shares sum to 100 within 3 * 0.05), and the profiled (eager) step changes no bit of the
// run: the same checkpoints as the graphed run without it.
TEST(TrainerGraph, ProfileStepSplitsOneStepAndChangesNothing) {
  const std::string dir = program_dir();
  const std::string flags = kProgramRun;
  const host_test::Result g = host_test::run_in_dir(dir, flags + "-o graph");
  ASSERT_EQ(g.code, 0) << g.err;
  const host_test::Result p = host_test::run_in_dir(dir, flags + "--profile-step 3 -o profiled");
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_NE(p.out.find("cuda graph: on: 3 graphs"), std::string::npos) << p.out;
  const size_t at = p.out.find("step profile (step 3, eager): ");
  ASSERT_NE(at, std::string::npos) << p.out;
  double mm = -1, att = -1, other = -1, total = -1;
  ASSERT_EQ(std::sscanf(p.out.c_str() + at, "step profile (step 3, eager): matmul %lf%% | attention %lf%% | other %lf%% of %lf ms",
                        &mm, &att, &other, &total), 4) << p.out.substr(at, 120);
  EXPECT_GT(mm, 0.0);
  EXPECT_GT(att, 0.0);
  EXPECT_GE(other, 0.0);
  EXPECT_NEAR(mm + att + other, 100.0, 0.15);
  EXPECT_GT(total, 0.0);
  expect_same_checkpoints(dir, "graph", "profiled");
  EXPECT_EQ(host_test::run_in_dir(dir, flags + "--profile-step -1 -o bad").code, 2);
}
