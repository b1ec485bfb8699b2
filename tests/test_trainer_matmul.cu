// test_trainer_matmul.cu — the trainer's matmul choice (--matmul, --tf32; gpu/train_model.cuh resolve_matmul)
// on the CUDA-on-CPU layer, with a fake cuBLASLt (tests/kernels/fake_matmul_vendor.h) standing in for the real one:
//   * a training step builds one plan per distinct matmul problem and the next step only hits the cache;
//   * a problem the vendor declines stops training with an error naming it (no silent own-GEMM fallback);
//   * --tf32 reaches every problem, and is refused where it cannot apply;
//   * the program: --matmul own end to end, the flags' bad values exit 2.
// The tiny preset (C=32, L=2, V=Vp=256) at B=2, T=16 (BT=32) has 15 distinct problems per step: forward qkv,
// attproj, fc (GELU epilogue), fcproj, lm head; backward dinp + dweight of each of the five.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host_test_util.h"
#include "tests/kernels/fake_matmul_vendor.h"

#include "gpu/train_model.cuh"

namespace {

using ktest::FakeVendor;
using ktest::ScopedVendor;

struct Tiny {
  llm::GPT2Config cfg = llm::preset_config("tiny");
  llm::TrainOptions o;
  Tiny() {
    o.batch_size = 2;
    o.seq_len = 16;
  }
};

// One optimizer step of one micro-batch of LCG tokens (step t's own); returns the loss.
float step(llm::TrainModel& m, int t, const Tiny& s) {
  const int BT = s.o.batch_size * s.o.seq_len;
  const std::vector<uint16_t> tok = host_test::lcg_tokens(BT + 1, 100 + t);
  std::vector<int> x(tok.begin(), tok.begin() + BT), y(tok.begin() + 1, tok.end());
  for (int& id : x) id %= s.cfg.vocab_size;
  for (int& id : y) id %= s.cfg.vocab_size;
  m.zero_grad();
  const float loss = m.train_micro_step(x.data(), y.data(), s.o.batch_size, s.o.seq_len, 0, 1.0f, true);
  m.update(1e-3f, t + 1, 1.0f);
  return loss;
}

TEST(TrainerMatmul, OnePlanPerProblemAndTheSameTrainingAsOwn) {
  const Tiny s;
  const int L = s.cfg.num_layers, calls_per_step = 3 * (4 * L + 1);  // forward 4L+1, backward twice that
  auto own = gpu::make_train_model(gpu::Precision::kFp32, s.cfg, s.o, false, gpu::device_info(), nullptr, 0,
                                   gpu::AttentionPath::kPortable, gpu::resolve_matmul("own", false, gpu::Precision::kFp32));
  FakeVendor v;
  ScopedVendor scope(&v);
  const kern::MatmulOptions mm = gpu::resolve_matmul("auto", false, gpu::Precision::kFp32);
  EXPECT_EQ(mm.backend, kern::MatmulBackend::CublasLt) << "auto must require the vendor when there is one";
  auto lt = gpu::make_train_model(gpu::Precision::kFp32, s.cfg, s.o, false, gpu::device_info(), nullptr, 0,
                                  gpu::AttentionPath::kPortable, mm);
  EXPECT_NE(lt->describe().find("| matmul cublaslt |"), std::string::npos) << lt->describe();
  own->init_random(7);
  lt->init_random(7);
  EXPECT_EQ(step(*own, 0, s), step(*lt, 0, s));
  EXPECT_EQ(v.cache.backend().created, 15);
  EXPECT_EQ(v.cache.misses(), 15);
  EXPECT_EQ(v.cache.hits(), calls_per_step - 15);
  EXPECT_EQ(step(*own, 1, s), step(*lt, 1, s));  // the fake computes with the own GEMM: bit for bit
  EXPECT_EQ(v.cache.backend().created, 15) << "the second step must only hit the cache";
  EXPECT_EQ(v.cache.hits(), 2 * calls_per_step - 15);
  EXPECT_EQ(v.runs, 2 * calls_per_step);
}

TEST(TrainerMatmul, DeclinedProblemStopsTrainingNamingIt) {
  const Tiny s;
  FakeVendor v;
  v.cache.backend().decline = [](const kern::MatmulProblem& p) { return p.epi == kern::MatmulEpi::kGeluAuxBias; };
  ScopedVendor scope(&v);
  auto m = gpu::make_train_model(gpu::Precision::kBf16, s.cfg, s.o, false, gpu::device_info(), nullptr, 0,
                                 gpu::AttentionPath::kPortable, gpu::resolve_matmul("auto", false, gpu::Precision::kBf16));
  m->init_random(7);
  const int before = kern::matmul_vendor_declines();
  try {
    step(*m, 0, s);
    FAIL() << "training went on past a declined matmul";
  } catch (const llm::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("matmul m=128 n=32 k=32 op(A)=T op(B)=N epilogue gelu_aux_bias bf16"), std::string::npos)
        << msg;  // the fc forward: 4C x BT x C with the GELU epilogue
    EXPECT_NE(msg.find("declined"), std::string::npos) << msg;
  }
  EXPECT_EQ(kern::matmul_vendor_declines(), before);
}

TEST(TrainerMatmul, Tf32ReachesEveryProblemAndIsRefusedWhereItCannotApply) {
  const Tiny s;
  FakeVendor v;
  ScopedVendor scope(&v);
  auto m = gpu::make_train_model(gpu::Precision::kFp32, s.cfg, s.o, false, gpu::device_info(), nullptr, 0,
                                 gpu::AttentionPath::kPortable, gpu::resolve_matmul("auto", true, gpu::Precision::kFp32));
  EXPECT_NE(m->describe().find("| matmul cublaslt (tf32) |"), std::string::npos) << m->describe();
  m->init_random(7);
  step(*m, 0, s);
  ASSERT_EQ(v.cache.backend().asked.size(), 15u);
  for (const auto& p : v.cache.backend().asked) EXPECT_TRUE(p.tf32) << p.describe();
  EXPECT_LLM_ERROR(gpu::resolve_matmul("auto", true, gpu::Precision::kBf16), "--tf32 applies to --precision fp32");
  EXPECT_LLM_ERROR(gpu::resolve_matmul("own", true, gpu::Precision::kFp32), "--tf32 needs cuBLASLt");
  EXPECT_LLM_ERROR(gpu::resolve_matmul("fast", false, gpu::Precision::kFp32), "--matmul must be auto, cublaslt or own");
}

// ---- the program (train_gpt2cu_cpu) ----

using host_test::Result;

Result run(const std::string& dir, const std::string& args) {
  return host_test::run_in_dir(dir, "'" TRAIN_GPT2CU_BIN "' " + args);
}
const char* kTrain = "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 -d 64 -s 0 -v 2 -m 2 -l 3e-3 -u 2 -x 3 ";

// --matmul own trains end to end; on the CPU layer auto resolves to the own GEMM, so the two logs are identical.
TEST(TrainerMatmulProgram, OwnTrainsEndToEnd) {
  const std::string dir = host_test::lcg_shard_dir();
  Result own = run(dir, std::string(kTrain) + "--precision fp32 --matmul own -o own");
  ASSERT_EQ(own.code, 0) << own.err;
  EXPECT_NE(own.out.find("| matmul own |"), std::string::npos) << own.out;
  EXPECT_NE(own.out.find("step     3/3 | loss "), std::string::npos) << own.out;
#ifndef __CUDACC__
  Result aut = run(dir, std::string(kTrain) + "--precision fp32 -o auto");
  ASSERT_EQ(aut.code, 0) << aut.err;
  EXPECT_EQ(host_test::train_losses(dir + "/own/main.log"), host_test::train_losses(dir + "/auto/main.log"));
  EXPECT_EQ(host_test::train_losses(dir + "/own/main.log").size(), 3u);
#endif
}

TEST(TrainerMatmulProgram, BadMatmulFlagsExitWithTwo) {
  const std::string dir = host_test::lcg_shard_dir();
  struct Case {
    std::string args, needle;
  } cases[] = {
      {std::string(kTrain) + "--matmul fast", "--matmul must be auto, cublaslt or own (got 'fast')"},
      {std::string(kTrain) + "--tf32", "--tf32 applies to --precision fp32"},
      {std::string(kTrain) + "--precision fp32 --tf32 --matmul own", "--tf32 needs cuBLASLt"},
#ifndef __CUDACC__
      {std::string(kTrain) + "--matmul cublaslt", "this build has no cuBLASLt"},
#endif
  };
  for (const Case& c : cases) {
    Result r = run(dir, c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << ": " << r.err;
  }
}

}  // namespace
