// test_trainer_dp.cpp — data-parallel training of the GPU trainer, run as `mpirun -np 2 train_gpt2cu_cpu train ...`
// (ctest label dp).
//
// The CUDA-on-CPU build of train_gpt2.cu keeps "device" memory in host memory, so it uses the MPI backend; the
// GPU model code that runs is the one the real build runs with NCCL (padded grads, per-layer all-reduce issued
// during the last backward, ZeRO-1 shards, collective checkpoint getters). Reference: the same program as ONE
// process with twice the accumulation — it must read the same windows (rank r, micro m = global window
// m·world + r), draw the same dropout masks and produce the same mean gradient.
// Figures (max relative differences) are printed; the bounds and why:
//   fp32 2 ranks vs 1 rank × a accum (K = 64 tokens per step) and 2 ranks × 2 vs 1 rank × 4 (K = 128): the runs differ
//     only in how fp32 sums are associated. The mean gradient is (g_a + g_b)·½ instead of g_a·½ + g_b·½ (equal,
//     ½ being a power of two), but the 1-rank run adds g_b into the accumulated g_a inside the matmul reductions and
//     the norm is summed per shard. Re-associating a K-term fp32 sum moves it by at most γ_K·Σ|terms| (Higham,
//     γ_K = K·u/(1 − K·u), u = 2^-24): a relative gradient difference ρ ≤ γ_K·κ, κ = Σ|terms| / |Σ terms| the
//     element's conditioning. How far this travels depends on the CPU (vector width and reduction blocking of the
//     -march=native build): measured ρ ≈ 0.2 γ_K on Cascade Lake, 1.4 γ_K on Zen 4 (fcprojw, 2.1e-5·lr in 6 steps).
//     Bounds, each derived from γ_K:
//     - log values (losses, norms, val losses, relative): γ_K. The norm is a sum of squares (no cancellation, so
//       it carries the gradients' ρ of its large, well-conditioned elements), the losses are means over the same
//       tokens at weights that differ by far less than γ_K relative.
//     - weights, max|Δ| per element in units of lr·steps: AdamW's step m̂/(√v̂+ε) is invariant to a common scale of
//       g, so a relative gradient error ρ moves one step by at most 2·ρ·lr; with κ ≤ 64 covered, 2·64·γ_K per step
//       (K = 128: 5.9e-3·lr over 6 steps). A data-parallel bug (a wrong window, a missing or early all-reduce)
//       changes gradients by O(1) and weights by ≳ 0.1·lr per step, well above.
//     - AdamW m and v, max|Δ| / max|ref| over the array: 2·γ_K (v holds g², so twice the relative gradient
//       difference; the array's largest entries are well-conditioned).
//   ZeRO-1 vs ZeRO-0 (2 ranks, fp32 and bf16): bit-identical files. Both sum the same two gradients, the norm is
//     Σ over the world shards of each shard's Σg² in both (gpu/gpt2_gpu.cuh update()), and the sharded AdamW
//     rounds every element with the same bits as the whole-tensor launch (kern::adamw_update's index_offset).
//   bf16 2 ranks vs 1 rank × 2 accum: the 1-rank run rounds its accumulated gradient to bf16 after each
//     micro-batch, the 2-rank run rounds each rank's gradient and then their sum: per element up to 2^-8
//     relative apart, independent from element to element. Losses: 1e-3 relative (these errors average out
//     over the model; measured ~2e-5); grad norms 1e-2 (measured ~1e-3). Weights, norm-wise per tensor: 5% —
//     AdamW's first steps move almost every element by ±lr whatever the gradient's size, so an element whose
//     gradient is near zero can flip sign under a 2^-8 perturbation and lands 2·lr away; the biases start at 0
//     and consist only of such steps (measured: fcb 1.6%; the other tensors less).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host/checkpoint.h"
#include "host/gpt2_config.h"
#include "host/train_state.h"
#include "host_test_util.h"

using namespace host_test;

namespace {

const char* kTensorNames[llm::kNumParamTensors] = {"wte",  "wpe",  "ln1w",     "ln1b",     "qkvw", "qkvb",
                                                  "attprojw", "attprojb", "ln2w", "ln2b", "fcw",  "fcb",
                                                  "fcprojw", "fcprojb", "lnfw", "lnfb", "lm_head"};

// `ranks` 0: a plain process (no launcher); else mpirun -np ranks.
Result run(const std::string& dir, int ranks, const std::string& args, const std::string& env = "") {
  // a deadline instead of a hang if a rank gets stuck; no single-copy shared memory between the ranks (containers
  // often forbid the cross-process reads it needs)
  std::string launcher = "timeout -k 5 150 ";
  if (ranks > 0) {
    launcher = "OMPI_MCA_btl_vader_single_copy_mechanism=none " + launcher + "'" + MPIRUN_BIN + "' -np " +
               std::to_string(ranks) + " --oversubscribe --bind-to none ";
    if (geteuid() == 0) launcher += "--allow-run-as-root ";
  }
  return run_in_dir(dir, env + " " + launcher + "'" TRAIN_GPT2CU_BIN "' " + args);
}

// A fresh directory with the LCG train.bin (3000 tokens) and val.bin (400).
std::string shard_dir() {
  const std::string dir = temp_dir();
  write_shard(dir + "/train.bin", lcg_tokens(3000, 1));
  write_shard(dir + "/val.bin", lcg_tokens(400, 2));
  return dir;
}

bool have_mpirun() { return std::string(MPIRUN_BIN).size() > 0; }
#define REQUIRE_MPIRUN() \
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not found at configure time: data-parallel tests skipped"

// 6 steps, dropout on every site, clipping, weight decay, cosine LR; val at steps 0, 3, 6. -d 64 = 2 windows of
// B·T = 32 tokens per step: 1 rank accumulates 2, 2 ranks one each.
const char* kTrain =
    "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 -d 64 -x 6 -s 0 -v 3 -m 4 -l 3e-3 -u 2 -c 0.1 -q 0.1 "
    "--dropout 0.1 --seed 7 ";
constexpr double kLr = 3e-3;  // -l in kTrain
constexpr int kSteps = 6;     // -x in kTrain

// Every value after "train", "norm" and "val" in main.log.
std::vector<double> log_numbers(const std::string& log) {
  std::vector<double> v;
  std::istringstream in(log);
  std::string word;
  while (in >> word)
    if (word == "train" || word == "norm" || word == "val") {
      double x;
      in >> x;
      v.push_back(x);
    }
  return v;
}

double max_rel_log(const std::string& a_dir, const std::string& b_dir) {
  const std::vector<double> a = log_numbers(slurp(a_dir + "/main.log")), b = log_numbers(slurp(b_dir + "/main.log"));
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(a.size(), 6u * 2 + 3) << "6 × (loss, norm) + 3 val losses";
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++)
    worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(std::fabs(b[i]), 1e-12));
  return worst;
}

// Loads two checkpoints of one model and calls visit(k, a_i, b_i) for every weight of tensor k, leaving out the key
// bias (middle third of each layer's qkvb): its gradient is mathematically zero (softmax ignores the constant q·b_k a
// row's scores share), so both runs hold rounding noise there, and AdamW turns noise of either sign into full ±lr
// steps (tests/test_trainer_parity.cu, KeyBiasGradientIsNoise).
template <class Visit>
void for_each_weight_pair(const std::string& a_file, const std::string& b_file, Visit visit) {
  std::vector<float> a, b;
  const llm::GPT2Config cfg = llm::load_checkpoint(a_file, &a).config;
  llm::load_checkpoint(b_file, &b);
  EXPECT_EQ(a.size(), b.size());
  const auto off = llm::param_offsets(cfg);
  const auto size = llm::param_sizes(cfg);
  for (int k = 0; k < llm::kNumParamTensors; k++)
    for (size_t i = off[k]; i < off[k] + size[k] && i < a.size() && i < b.size(); i++) {
      if (k == llm::kQkvb && ((i - off[k]) % (3 * (size_t)cfg.channels)) / cfg.channels == 1) continue;
      visit(k, (double)a[i], (double)b[i]);
    }
}

// Worst per-tensor error of the final weights: max|a − b| / max|b| (norm_wise = false) or ‖a − b‖ / ‖b‖.
double weights_rel(const std::string& a_file, const std::string& b_file, bool norm_wise, std::string* which) {
  double d[llm::kNumParamTensors] = {}, s[llm::kNumParamTensors] = {};
  for_each_weight_pair(a_file, b_file, [&](int k, double x, double y) {
    if (norm_wise) {
      d[k] += (x - y) * (x - y);
      s[k] += y * y;
    } else {
      d[k] = std::max(d[k], std::fabs(x - y));
      s[k] = std::max(s[k], std::fabs(y));
    }
  });
  double worst = 0;
  for (int k = 0; k < llm::kNumParamTensors; k++) {
    if (s[k] == 0) continue;
    const double r = norm_wise ? std::sqrt(d[k] / s[k]) : d[k] / s[k];
    if (r > worst && which) *which = kTensorNames[k];
    worst = std::max(worst, r);
  }
  return worst;
}

// u = 2^-24 (fp32 unit roundoff) and Higham's γ_K = K·u / (1 − K·u): the bound on re-associating a K-term sum.
double gamma_fp32(int K) {
  const double u = std::ldexp(1.0, -24);
  return K * u / (1 - K * u);
}

// Largest per-element weight difference max|a − b| over all tensors (the key bias left out), in units of lr·steps:
// AdamW moves an element by about lr per step, so this is the fraction of the largest possible movement by which
// the runs disagree.
double weights_lr_steps(const std::string& a_file, const std::string& b_file, double lr, int steps,
                        std::string* which) {
  double worst = 0;
  for_each_weight_pair(a_file, b_file, [&](int k, double x, double y) {
    if (std::fabs(x - y) > worst && which) *which = kTensorNames[k];
    worst = std::max(worst, std::fabs(x - y));
  });
  return worst / (lr * steps);
}

// Max relative difference of the AdamW moments (m and v, max|a − b| / max|b| over the whole array).
double state_rel(const std::string& a_file, const std::string& b_file, size_t n) {
  const llm::TrainState a = llm::load_train_state(a_file, n), b = llm::load_train_state(b_file, n);
  double worst = 0;
  for (int which = 0; which < 2; which++) {
    const std::vector<float>& x = which ? a.v : a.m;
    const std::vector<float>& y = which ? b.v : b.m;
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
      d = std::max(d, std::fabs((double)x[i] - y[i]));
      s = std::max(s, std::fabs((double)y[i]));
    }
    worst = std::max(worst, s > 0 ? d / s : d);
  }
  return worst;
}

size_t tiny_params() { return llm::num_parameters(llm::preset_config("tiny")); }

void expect_ok(const Result& r, const char* what) {
  ASSERT_EQ(r.code, 0) << what << "\n" << r.out << "\n" << r.err;
}

}  // namespace

// 2 ranks × 1 micro-batch == 1 rank × 2 accumulated micro-batches (fp32): losses, norms, val losses, weights, m/v.
TEST(TrainerDataParallel, Fp32TwoRanksEqualOneRankTwoAccum) {
  REQUIRE_MPIRUN();
  const std::string dir = shard_dir();
  const std::string flags = std::string(kTrain) + "--precision fp32 ";
  expect_ok(run(dir, 0, flags + "-o one"), "1 rank");
  const Result two = run(dir, 2, flags + "-o two");
  expect_ok(two, "2 ranks");
  EXPECT_NE(two.out.find("data parallel: 2 ranks, ZeRO-0"), std::string::npos) << two.out;
  EXPECT_EQ(two.out.find("step     1/6"), two.out.rfind("step     1/6")) << "only rank 0 prints:\n" << two.out;
  std::string which;
  const double logs = max_rel_log(dir + "/two", dir + "/one");
  const double w = weights_lr_steps(dir + "/two/model_00000006.bin", dir + "/one/model_00000006.bin", kLr, kSteps,
                                    &which);
  const double st = state_rel(dir + "/two/state_00000006.bin", dir + "/one/state_00000006.bin", tiny_params());
  std::printf("[dp fp32] 2 ranks vs 1 rank x 2 accum: log values %.3g (bound %.3g), weights %.3g lr/step (%s, "
              "bound %.3g), adam m/v %.3g (max rel, bound %.3g)\n",
              logs, gamma_fp32(64), w, which.c_str(), 2 * 64 * gamma_fp32(64), st, 2 * gamma_fp32(64));
  // bounds derived at the top of this file: K = 64 tokens per step (-d 64)
  EXPECT_LT(logs, gamma_fp32(64));
  EXPECT_LT(w, 2 * 64 * gamma_fp32(64));
  EXPECT_LT(st, 2 * gamma_fp32(64)) << "m/v: v holds squared gradients, so twice the relative gradient difference";

  // 2 ranks × 2 accumulated micro-batches == 1 rank × 4: the per-layer all-reduce must start only in the LAST
  // micro-batch's backward (an earlier one would sum partial gradients and then add more to them)
  const std::string flags4 = flags + "-d 128 ";
  expect_ok(run(dir, 0, flags4 + "-o one4"), "1 rank x 4");
  expect_ok(run(dir, 2, flags4 + "-o two4"), "2 ranks x 2");
  const double logs4 = max_rel_log(dir + "/two4", dir + "/one4");
  const double w4 = weights_lr_steps(dir + "/two4/model_00000006.bin", dir + "/one4/model_00000006.bin", kLr, kSteps,
                                     &which);
  std::printf("[dp fp32] 2 ranks x 2 accum vs 1 rank x 4 accum: log values %.3g (bound %.3g), weights %.3g lr/step "
              "(%s, bound %.3g)\n",
              logs4, gamma_fp32(128), w4, which.c_str(), 2 * 64 * gamma_fp32(128));
  EXPECT_LT(logs4, gamma_fp32(128));  // K = 128 tokens per step (-d 128)
  EXPECT_LT(w4, 2 * 64 * gamma_fp32(128));
}

// ZeRO-1 (reduce-scatter, AdamW on the own shard, all-gather) equals ZeRO-0 on 2 ranks bit for bit, fp32 and
// bf16; the checkpoint getters gather the shards (weights and m/v written by rank 0 are the full arrays).
TEST(TrainerDataParallel, Zero1EqualsZero0) {
  REQUIRE_MPIRUN();
  const std::string dir = shard_dir();
  for (const char* prec : {"fp32", "bf16"}) {
    const std::string flags = std::string(kTrain) + "--precision " + prec + " ";
    expect_ok(run(dir, 2, flags + "-z 0 -o z0_" + prec), "ZeRO-0");
    const Result z1 = run(dir, 2, flags + "-z 1 -o z1_" + prec);
    expect_ok(z1, "ZeRO-1");
    EXPECT_NE(z1.out.find("data parallel: 2 ranks, ZeRO-1"), std::string::npos) << z1.out;
    const std::string a = dir + "/z1_" + prec, b = dir + "/z0_" + prec;
    std::string which;
    const double logs = max_rel_log(a, b);
    const double w = weights_rel(a + "/model_00000006.bin", b + "/model_00000006.bin", false, &which);
    const double st = state_rel(a + "/state_00000006.bin", b + "/state_00000006.bin", tiny_params());
    std::printf("[dp %s] ZeRO-1 vs ZeRO-0 on 2 ranks: log values %.3g, weights %.3g (%s), adam m/v %.3g\n", prec,
                logs, w, which.c_str(), st);
    EXPECT_EQ(logs, 0.0) << prec;
    EXPECT_TRUE(read_bytes(a + "/model_00000006.bin") == read_bytes(b + "/model_00000006.bin"))
        << prec << " weights differ";
    EXPECT_EQ(st, 0.0) << prec << " AdamW m/v differ";  // (the state files' fingerprints name the ZeRO stage)
  }
}

// bf16: 2 ranks vs 1 rank × 2 accum within the bounds justified at the top of this file.
TEST(TrainerDataParallel, Bf16TwoRanksCloseToOneRankTwoAccum) {
  REQUIRE_MPIRUN();
  const std::string dir = shard_dir();
  const std::string flags = std::string(kTrain) + "--precision bf16 ";
  expect_ok(run(dir, 0, flags + "-o one"), "1 rank");
  expect_ok(run(dir, 2, flags + "-o two"), "2 ranks");
  const std::vector<double> a = log_numbers(slurp(dir + "/two/main.log")), b = log_numbers(slurp(dir + "/one/main.log"));
  ASSERT_EQ(a.size(), b.size());
  double loss = 0, norm = 0;
  for (size_t i = 0; i < a.size(); i++) {  // layout: val, (train, norm) × 3, val, (train, norm) × 3, val
    const double r = std::fabs(a[i] - b[i]) / std::fabs(b[i]);
    const bool is_norm = i != 0 && i != 7 && i != 14 && ((i % 7) % 2 == 0);
    (is_norm ? norm : loss) = std::max(is_norm ? norm : loss, r);
  }
  std::string which;
  const double w = weights_rel(dir + "/two/model_00000006.bin", dir + "/one/model_00000006.bin", true, &which);
  std::printf("[dp bf16] 2 ranks vs 1 rank x 2 accum: losses %.3g, norms %.3g (max rel), weights %.3g (%s, norm-wise)\n",
              loss, norm, w, which.c_str());
  EXPECT_LT(loss, 1e-3);
  EXPECT_LT(norm, 1e-2);
  EXPECT_LT(w, 0.05);
}

// Resume under ZeRO-1 (the collective set_optimizer_state keeps each rank's shard): bit-exact.
TEST(TrainerDataParallel, Zero1ResumeIsBitExact) {
  REQUIRE_MPIRUN();
  const std::string dir = shard_dir();
  const std::string flags = std::string(kTrain) + "--precision bf16 -z 1 -n 3 ";
  expect_ok(run(dir, 2, flags + "-o full"), "full");
  ASSERT_EQ(std::system(("mkdir '" + dir + "/cut' && cp '" + dir + "'/full/*_00000003* '" + dir + "/cut/'").c_str()), 0);
  const Result r = run(dir, 2, flags + "-o cut -y 1");
  expect_ok(r, "resume");
  EXPECT_NE(r.out.find("resumed from cut at step 3"), std::string::npos) << r.out;
  EXPECT_TRUE(read_bytes(dir + "/full/model_00000006.bin") == read_bytes(dir + "/cut/model_00000006.bin"));
  EXPECT_TRUE(read_bytes(dir + "/full/state_00000006.bin") == read_bytes(dir + "/cut/state_00000006.bin"));
}

// Bad launches: a world size that does not divide the batch, a torchrun-style environment (the CPU build needs
// mpirun), a half-set torchrun environment.
TEST(TrainerDataParallel, BadLaunchesExitNonZeroWithAMessage) {
  const std::string dir = shard_dir();
  if (have_mpirun()) {
    const Result r = run(dir, 2, "train --preset tiny -i train.bin -j '' -b 2 -t 16 -d 96 -x 1 -s 0");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("-d"), std::string::npos) << r.err;
  }
  const Result t = run(dir, 0, "train --preset tiny -i train.bin -j '' -b 2 -t 16 -x 1 -s 0",
                       "RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29511");
  EXPECT_EQ(t.code, 2) << t.err;
  EXPECT_NE(t.err.find("mpirun"), std::string::npos) << t.err;
  const Result h = run(dir, 0, "train --preset tiny -i train.bin -j '' -b 2 -t 16 -x 1 -s 0", "RANK=1 WORLD_SIZE=2");
  EXPECT_EQ(h.code, 2) << h.err;
  EXPECT_EQ(h.err.rfind("error: ", 0), 0u) << h.err;
}
