// End-to-end data parallel tests of build/gpt2_cpu under mpiexec (label dp), on the "tiny" presets:
//   - 2 ranks × B == 1 rank with 2 accumulation steps (losses, norms, val losses, final weights and AdamW state)
//   - ZeRO-1 == ZeRO-0 on 3 ranks with a parameter count that 3 does not divide (padded shards)
//   - resume under 2 ranks (ZeRO-1) == the uninterrupted run, bit for bit
//   - a checkpoint from another world size / ZeRO stage / config is refused with exit code 2
//   - bad launch input: world size not dividing -d, missing/invalid rank variables, torchrun env on the CPU
// 1 rank vs 2 ranks is not bit-exact: one rank adds micro-batch 2's gradient into the buffer that holds micro-batch
// 1's, two ranks add two finished buffers, so the K = 64-token fp32 gradient sums associate differently. As in
// tests/test_trainer_dp.cpp: re-associating a K-term sum moves it by ≤ γ_K·Σ|terms| (γ_K = K·u/(1 − K·u), u = 2^-24,
// γ_64 = 3.8e-6), a relative gradient difference ρ ≤ γ_K·κ (κ: the element's conditioning). Bounds:
//   - printed log values (6 decimals: 1e-6 absolute allowed on top), relative: γ_K (was 1e-6, below γ_64);
//   - weights, max|Δ| over every element in units of lr·steps: AdamW's step m̂/(√v̂+ε) is invariant to a common
//     scale of g, so ρ moves a step by ≤ 2ρ·lr; κ ≤ 64 covered: 2·64·γ_K = 4.9e-4 (was per tensor L2 ≤ 1e-6, which
//     the 0-initialised biases, whose size is itself a few lr, cannot meet on every CPU); a wrong window or a
//     missing all-reduce moves weights by ≳ 0.1·lr per step;
//   - AdamW m and v, per tensor ||Δ|| / ||ref||: 2γ_K and 4γ_K (v holds g²: twice m's relative difference).
// The key third of the qkv bias is left out (as in test_trainer_parity): its exact gradient is zero (softmax ignores
// a per-query constant), so its value is rounding noise that AdamW turns into ±lr steps.
// ZeRO-1 vs ZeRO-0 adds every gradient element in the same order (host/comm_mpi.cpp), so only the norm's
// summation order differs there: a double sum of squares (relative n·2^-53 ≈ 5e-12 for n = 43712), rounded to a
// float clip scale that can move by 1 ulp (2^-24): g scaled by (1 ± 2^-24), which AdamW's step ignores and m, v
// carry as ≤ 2^-24 and 2^-23 relative: per tensor L2 ≤ 1e-6 (≈ 17u) for weights, m, v; printed values 1e-6.
// The runs use --threads 1 on every side: the CPU reference's sums depend on the thread count, not on the ranks.
// Skipped (with the reason) when CMake found no MPI.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "host/checkpoint.h"
#include "host/gpt2_config.h"
#include "host/train_state.h"
#include "host_test_util.h"

using namespace host_test;

namespace {

// launcher + gpt2_cpu + args, inside dir. The launcher is local() or mpi(n); both kill the run after 150 s at
// worst (a hang fails the test instead of blocking it).
Result run(const std::string& dir, const std::string& launcher, const std::string& args) {
  return run_in_dir(dir, launcher + " '" GPT2_CPU_BIN "' " + args);
}

// One process, with extra environment variables ("RANK=1 WORLD_SIZE=2").
std::string local(const std::string& env = "") { return "env " + env + " timeout -k 5 150"; }

#ifdef LLM_MPIEXEC
// mpiexec -n N ...; Open MPI settings for CI containers (root, 2 cores, other tests running at the same time).
std::string mpi(int n) {
  // (no single-copy shared memory: containers often forbid the cross-process reads it needs)
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
         "OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl_vader_single_copy_mechanism=none "
         "timeout -k 5 150 '" LLM_MPIEXEC "' " LLM_MPIEXEC_NUMPROC_FLAG " " +
         std::to_string(n);
}
#define REQUIRE_MPI()
#else
std::string mpi(int) { return local(); }
#define REQUIRE_MPI() GTEST_SKIP() << "MPI was not found when CMake configured the build (install libopenmpi-dev)"
#endif

// A learnable token stream below the tiny vocab (256).
std::vector<uint16_t> stream(int n, uint32_t seed) {
  std::vector<uint16_t> t(n);
  uint32_t s = seed;
  for (int i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    t[i] = static_cast<uint16_t>((i * 7 + (s >> 29)) % 200);
  }
  return t;
}

// "step N train L ... norm G" and "step N val L" lines of main.log as numbers, in order.
struct Log {
  std::vector<double> loss, norm, val;
};
Log read_log(const std::string& path) {
  Log l;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) {
    std::istringstream w(line);
    std::string step, n, kind, lr_key, norm_key;
    double loss, lr, norm;
    w >> step >> n >> kind >> loss;
    if (kind == "train") {
      w >> lr_key >> lr >> norm_key >> norm;
      l.loss.push_back(loss);
      l.norm.push_back(norm);
    } else if (kind == "val") {
      l.val.push_back(loss);
    }
  }
  return l;
}

// Largest difference of two printed series relative to the values; the log prints 6 decimals, so one unit of
// the last printed digit (1e-6) is allowed on top.
double max_rel_printed(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++)
    worst = std::max(worst, std::max(0.0, std::fabs(a[i] - b[i]) - 1e-6) / std::fabs(b[i]));
  return worst;
}

// max |a − b| over every parameter except the key bias (absolute).
double max_abs_diff(const llm::GPT2Config& c, const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return INFINITY;
  const size_t off = llm::param_offsets(c)[llm::kQkvb], n = llm::param_sizes(c)[llm::kQkvb], C = c.channels;
  double worst = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (i >= off && i < off + n && ((i - off) % (3 * C)) / C == 1) continue;  // key bias
    worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
  }
  return worst;
}

// γ_K = K·u/(1 − K·u), u = 2^-24 (Higham): the bound on re-associating a K-term fp32 sum, relative to Σ|terms|.
double gamma_k(int K) {
  const double u = std::ldexp(1.0, -24);
  return K * u / (1 - K * u);
}

// Per tensor ||a-b|| / ||b|| (L2) over the gpt2_config.h layout, without the key bias; the worst tensor.
double max_rel_per_tensor(const llm::GPT2Config& c, const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return INFINITY;
  const auto sizes = llm::param_sizes(c);
  const auto offsets = llm::param_offsets(c);
  const size_t C = c.channels;
  double worst = 0;
  for (int k = 0; k < llm::kNumParamTensors; k++) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < sizes[k]; i++) {
      if (k == llm::kQkvb && (i % (3 * C)) / C == 1) continue;  // key bias: noise (see the top of the file)
      const double x = a[offsets[k] + i], y = b[offsets[k] + i];
      diff += (x - y) * (x - y);
      norm += y * y;
    }
    if (sizes[k] > 0) worst = std::max(worst, norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff));
  }
  return worst;
}

struct Saved {
  llm::GPT2Config config;
  std::vector<float> w;
  llm::TrainState st;
};
Saved load(const std::string& dir, int step) {
  char name[64];
  Saved s;
  std::snprintf(name, sizeof(name), "/model_%08d.bin", step);
  s.config = llm::load_checkpoint(dir + name, &s.w).config;
  std::snprintf(name, sizeof(name), "/state_%08d.bin", step);
  s.st = llm::load_train_state(dir + name, s.w.size());
  return s;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

class DpCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = temp_dir();
    write_shard(dir + "/train.bin", stream(6000, 1));
    write_shard(dir + "/val.bin", stream(1000, 2));
  }
  std::string dir;
};

// Dropout, weight decay, warmup + cosine and clipping (the first norms are > 1) are on, so every path matters.
const char* kTrain =
    "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 --threads 1 -s 0 -l 1e-3 -u 2 -q 0.1 -c 0.1 "
    "--dropout 0.1 -v 2 -m 5 ";

}  // namespace

TEST_F(DpCli, TwoRanksEqualOneRankWithTwoAccumulationSteps) {
  REQUIRE_MPI();
  const std::string flags = std::string(kTrain) + "-d 64 -x 5 ";
  Result one = run(dir, local(), flags + "-o one");
  ASSERT_EQ(one.code, 0) << one.err;
  Result two = run(dir, mpi(2), flags + "-o two");
  ASSERT_EQ(two.code, 0) << two.err << two.out;
  // only rank 0 prints: one banner, one line per step
  EXPECT_EQ(count(two.out, "gpt2_cpu train |"), 1) << two.out;
  EXPECT_EQ(count(two.out, "step     5/5 | loss"), 1) << two.out;
  EXPECT_NE(two.out.find("data parallel: 2 ranks | ZeRO-0 | each rank: B=2 T=16 accum=1"), std::string::npos);
  EXPECT_NE(one.out.find("accum=2 -> 64 tokens/step"), std::string::npos) << one.out;

  const Log a = read_log(dir + "/one/main.log"), b = read_log(dir + "/two/main.log");
  ASSERT_EQ(a.loss.size(), 5u);
  ASSERT_EQ(a.val.size(), 4u);  // steps 0, 2, 4, 5
  const double loss_rel = max_rel_printed(b.loss, a.loss), norm_rel = max_rel_printed(b.norm, a.norm),
               val_rel = max_rel_printed(b.val, a.val);
  const double g = gamma_k(64);  // -d 64: K = 64 tokens per step (see the top of the file for every bound)
  EXPECT_LE(loss_rel, g);
  EXPECT_LE(norm_rel, g);
  EXPECT_LE(val_rel, g);
  EXPECT_GT(a.norm[0], 1.0) << "the test means to exercise clipping";

  const Saved s1 = load(dir + "/one", 5), s2 = load(dir + "/two", 5);
  const double lr_steps = 1e-3 * 5;  // -l 1e-3 (the peak; the schedule only lowers it) × -x 5
  const double w_lr = max_abs_diff(s1.config, s2.w, s1.w) / lr_steps,
               m_rel = max_rel_per_tensor(s1.config, s2.st.m, s1.st.m),
               v_rel = max_rel_per_tensor(s1.config, s2.st.v, s1.st.v);
  EXPECT_LE(w_lr, 2 * 64 * g);
  EXPECT_LE(m_rel, 2 * g);
  EXPECT_LE(v_rel, 4 * g);
  std::printf("[ figures  ] 2 ranks vs 1 rank x 2 accum: max rel diff loss %.3g norm %.3g val %.3g (printed, 6 "
              "decimals; bound γ_64 %.3g) | weights max|Δ| %.3g lr·steps (bound %.3g) | m %.3g v %.3g per tensor "
              "(bounds %.3g %.3g)\n",
              loss_rel, norm_rel, val_rel, g, w_lr, 2 * 64 * g, m_rel, v_rel, 2 * g, 4 * g);
  // same loader position: rank 0's position is the single rank's position in units of world windows
  EXPECT_EQ(s1.st.loader.window, 2 * s2.st.loader.window);
  // and training moved the weights (the comparison is not trivially true)
  Result init = run(dir, local(), std::string(kTrain) + "-d 64 -x 1 -o init0");
  ASSERT_EQ(init.code, 0);
  EXPECT_GT(max_rel_per_tensor(s1.config, load(dir + "/init0", 1).w, s1.w), 1e-3);
}

// tiny-book has 43712 parameters: 3 ranks get padded shards of 14571 (the last one ends in 1 padding element).
TEST_F(DpCli, Zero1EqualsZero0OnThreeRanks) {
  REQUIRE_MPI();
  ASSERT_NE(llm::num_parameters(llm::preset_config("tiny-book")) % 3, 0u);
  std::string flags = std::string(kTrain) + "-d 192 -x 4 --grad-clip 0.5 ";
  flags.replace(flags.find("--preset tiny "), 14, "--preset tiny-book ");
  Result z0 = run(dir, mpi(3), flags + "-z 0 -o z0");
  ASSERT_EQ(z0.code, 0) << z0.err;
  Result z1 = run(dir, mpi(3), flags + "-z 1 -o z1");
  ASSERT_EQ(z1.code, 0) << z1.err;
  EXPECT_NE(z1.out.find("data parallel: 3 ranks | ZeRO-1 | each rank: B=2 T=16 accum=2"), std::string::npos)
      << z1.out;
  const Log a = read_log(dir + "/z0/main.log"), b = read_log(dir + "/z1/main.log");
  const double loss_rel = max_rel_printed(b.loss, a.loss), norm_rel = max_rel_printed(b.norm, a.norm);
  EXPECT_LE(loss_rel, 1e-6);
  EXPECT_LE(norm_rel, 1e-6);
  EXPECT_GT(a.norm[0], 0.5) << "the test means to exercise clipping";
  const Saved s0 = load(dir + "/z0", 4), s1 = load(dir + "/z1", 4);
  const double w_rel = max_rel_per_tensor(s0.config, s1.w, s0.w), m_rel = max_rel_per_tensor(s0.config, s1.st.m, s0.st.m),
               v_rel = max_rel_per_tensor(s0.config, s1.st.v, s0.st.v);
  EXPECT_LE(w_rel, 1e-6);
  EXPECT_LE(m_rel, 1e-6);  // the gathered shards, including the last rank's (padded) one
  EXPECT_LE(v_rel, 1e-6);
  std::printf("[ figures  ] ZeRO-1 vs ZeRO-0, 3 ranks: max rel diff loss %.3g norm %.3g (printed) | weights %.3g "
              "m %.3g v %.3g (full precision, per tensor)\n",
              loss_rel, norm_rel, w_rel, m_rel, v_rel);
}

// 6 steps straight == 3 steps, "crash", resume for 3 more, both under 2 ranks with ZeRO-1 (sharded AdamW state is
// gathered into the state file and scattered again on resume).
TEST_F(DpCli, ResumeUnderTwoRanksIsBitExact) {
  REQUIRE_MPI();
  const std::string flags = std::string(kTrain) + "-d 128 -x 6 -n 3 -z 1 ";
  Result a = run(dir, mpi(2), flags + "-o full");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(std::system(("mkdir '" + dir + "/cut' && cp '" + dir + "'/full/*_00000003* '" + dir + "/cut/'").c_str()), 0);
  Result b = run(dir, mpi(2), flags + "-o cut --resume");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("resumed from cut at step 3"), std::string::npos) << b.out;
  EXPECT_TRUE(read_bytes(dir + "/full/model_00000006.bin") == read_bytes(dir + "/cut/model_00000006.bin"));
  EXPECT_TRUE(read_bytes(dir + "/full/state_00000006.bin") == read_bytes(dir + "/cut/state_00000006.bin"));
  EXPECT_FALSE(read_bytes(dir + "/full/model_00000006.bin") == read_bytes(dir + "/full/model_00000003.bin"));
}

TEST_F(DpCli, ResumeFromAnotherWorldSizeZeroStageOrConfigIsRefused) {
  REQUIRE_MPI();
  const std::string flags = std::string(kTrain) + "-d 64 -x 4 -n 2 ";
  Result a = run(dir, mpi(2), flags + "-z 1 -o ck");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(std::system(("rm '" + dir + "'/ck/*_00000004*").c_str()), 0);
  const std::string state = "ck/state_00000002.bin: ";
  // one rank (with the same global batch: 2 accumulation steps)
  Result r = run(dir, local(), flags + "-z 1 -o ck --resume");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find(state + "was written by a data-parallel run with world=2 zero=1 but this run has world=1 zero=1"),
            std::string::npos)
      << r.err;
  // another ZeRO stage
  r = run(dir, mpi(2), flags + "-z 0 -o ck --resume");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("with world=2 zero=1 but this run has world=2 zero=0; resume needs the same number of ranks"),
            std::string::npos)
      << r.err;
  // another config (dropout)
  r = run(dir, mpi(2), flags + "-z 1 -o ck --resume --dropout 0.2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(state + "was written with different settings"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(dir + "/ck/model_00000004.bin"));
  // ranks that see different checkpoints (-o not on a shared filesystem): rank r runs in its own copy r<r>/,
  // and only rank 0's copy has the checkpoint
  ASSERT_EQ(std::system(("cd '" + dir + "' && mkdir r0 r1 && cp train.bin val.bin r0/ && cp train.bin val.bin r1/ "
                         "&& cp -r ck r0/").c_str()), 0);
  const std::string per_rank = "cd '" + dir + "' && " + mpi(2) + " sh -c 'cd r$OMPI_COMM_WORLD_RANK && exec \"" +
                               GPT2_CPU_BIN + "\" " + flags + "-z 1 -o ck --resume' > stdout.txt 2> stderr.txt";
  const int status = std::system(per_rank.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  EXPECT_NE(slurp(dir + "/stderr.txt").find("ck: the ranks see different latest checkpoints (rank 0: step 2, rank 1: "
                                            "step -1; -1 = none); -o must be a directory every rank sees"),
            std::string::npos)
      << slurp(dir + "/stderr.txt");
}

// The world size does not divide the batch: 96 tokens over 2 ranks of B*T = 32. Every rank says so, then
// MPI_Abort ends the run with the same exit code 2.
TEST_F(DpCli, WorldSizeNotDividingTheBatchExitsTwo) {
  REQUIRE_MPI();
  Result r = run(dir, mpi(2), std::string(kTrain) + "-x 2 -d 96 -o never");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("error: -d/--total-batch 96 is not divisible by B*T*ranks = 2*16*2 = 64 (world size 2)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(exists(dir + "/never"));
}

// (needs no MPI)
TEST_F(DpCli, BadLaunchEnvironmentExitsTwoWithAClearMessage) {
  const std::string flags = std::string(kTrain) + "-x 2 ";
  Result r;
#ifndef LLM_MPIEXEC
  r = run(dir, local("OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2"), flags + "-o never");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("launched as rank 0 of 2 but this build has no MPI"), std::string::npos) << r.err;
#endif
  // rank variables: missing / invalid ones are named
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"RANK=1", "error: environment variable WORLD_SIZE is not set"},
      {"RANK=2 WORLD_SIZE=2", "error: environment variable RANK='2' is not an integer in [0, 1]"},
      {"RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1", "error: environment variable MASTER_PORT is not set"},
      {"OMPI_COMM_WORLD_SIZE=2", "error: environment variable OMPI_COMM_WORLD_RANK is not set"},
      // a complete torchrun environment: the CPU program needs mpirun (and says so at once, no rendezvous)
      {"RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=1",
       "a torchrun-style launch (RANK/WORLD_SIZE/MASTER_ADDR) is for the NCCL GPU trainer; the CPU programs "
       "communicate through MPI: start them with mpirun -np 2"},
  };
  for (const auto& [env, message] : cases) {
    r = run(dir, local(env), flags + "-o never");
    EXPECT_EQ(r.code, 2) << env;
    EXPECT_NE(r.err.find(message), std::string::npos) << env << "\n" << r.err;
    EXPECT_FALSE(exists(dir + "/never"));
  }
  r = run(dir, local(), flags + "-z 2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("error: -z/--zero must be 0 or 1 (got 2)"), std::string::npos) << r.err;
  r = run(dir, local(), flags + "--rendezvous-timeout 0");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--rendezvous-timeout must be a positive number"), std::string::npos) << r.err;
}
