// test_matmul_plan.cu — kernels/matmul_plan.h on the CPU layer: the per-problem plan cache (hits, misses, a
// declined problem remembered with its reason), the rule for a declined vendor call (Own never asks, Auto counts
// and falls back, CublasLt = required throws naming the problem), and matmul_forward/backward routed through a
// fake vendor (tests/kernels/fake_matmul_vendor.h): the same numbers as the own GEMM, one plan per problem.
#include "tests/kernels/fake_matmul_vendor.h"
#include "tests/kernels/kernel_test_util.h"

#include <cstring>
#include <vector>

namespace {

using kern::MatmulBackend;
using kern::MatmulEpi;
using kern::MatmulProblem;
using ktest::DeviceArray;
using ktest::FakeVendor;
using ktest::random_vec;

MatmulProblem problem(int m, int n, int k) {
  MatmulProblem p;
  p.m = m, p.n = n, p.k = k;
  return p;
}

TEST(MatmulPlanCache, OnePlanPerProblemThenHits) {
  kern::MatmulPlanCache<ktest::FakeLtBackend> cache;
  std::string why;
  const MatmulProblem base = problem(96, 32, 32);
  // every field of the key makes a different problem
  std::vector<MatmulProblem> distinct(7, base);
  distinct[1].m = 97;
  distinct[2].k = 33;
  distinct[3].trans_a = true;
  distinct[4].trans_b = true;
  distinct[5].epi = MatmulEpi::kGeluAuxBias;
  distinct[6].tf32 = true;
  MatmulProblem bf16 = base;
  bf16.type = kern::MatmulType::kBf16;
  distinct.push_back(bf16);
  std::vector<int> ids;
  for (const auto& p : distinct) ids.push_back(cache.get(p, &why)->id);
  EXPECT_EQ(cache.misses(), 8);
  EXPECT_EQ(cache.hits(), 0);
  EXPECT_EQ(cache.backend().created, 8);
  for (int rep = 0; rep < 3; rep++)
    for (size_t i = 0; i < distinct.size(); i++) EXPECT_EQ(cache.get(distinct[i], &why)->id, ids[i]);
  EXPECT_EQ(cache.misses(), 8);
  EXPECT_EQ(cache.hits(), 24);
  EXPECT_EQ(cache.backend().created, 8) << "a cached problem must not build its plan again";
  EXPECT_EQ(cache.size(), 8u);
  cache.clear();
  EXPECT_EQ(cache.backend().destroyed, 8);
}

TEST(MatmulPlanCache, DeclinedProblemIsRememberedWithItsReason) {
  kern::MatmulPlanCache<ktest::FakeLtBackend> cache;
  cache.backend().decline = [](const MatmulProblem& p) { return p.m == 41; };
  std::string why;
  EXPECT_EQ(cache.get(problem(41, 15, 37), &why), nullptr);
  EXPECT_EQ(why, "the fake heuristic found no algorithm");
  why.clear();
  EXPECT_EQ(cache.get(problem(41, 15, 37), &why), nullptr);
  EXPECT_EQ(why, "the fake heuristic found no algorithm");
  EXPECT_EQ(cache.backend().asked.size(), 1u) << "the heuristic is asked once per problem, declined or not";
  EXPECT_NE(cache.get(problem(40, 15, 37), &why), nullptr);
  cache.clear();
  EXPECT_EQ(cache.backend().destroyed, 1);  // only the accepted plan had anything to destroy
}

TEST(MatmulDecision, OwnNeverAsksTheVendor) {
  FakeVendor v;
  EXPECT_FALSE(kern::matmul_try_vendor(&v, MatmulBackend::Own, problem(8, 8, 8), {}));
  EXPECT_EQ(v.cache.misses() + v.cache.hits(), 0);
}

TEST(MatmulDecision, AutoCountsADeclineAndFallsBack) {
  FakeVendor v;
  v.cache.backend().decline = [](const MatmulProblem&) { return true; };
  const int before = kern::matmul_vendor_declines();
  EXPECT_FALSE(kern::matmul_try_vendor(&v, MatmulBackend::Auto, problem(8, 8, 8), {}));
  EXPECT_EQ(kern::matmul_vendor_declines(), before + 1);
  EXPECT_FALSE(kern::matmul_try_vendor(nullptr, MatmulBackend::Auto, problem(8, 8, 8), {}));
  EXPECT_EQ(kern::matmul_vendor_declines(), before + 1) << "no vendor at all is not a decline";
}

TEST(MatmulDecision, RequiredDeclineIsAnErrorNamingTheProblem) {
  FakeVendor v;
  v.cache.backend().decline = [](const MatmulProblem&) { return true; };
  MatmulProblem p = problem(3072, 8192, 768);
  p.trans_a = true;
  p.epi = MatmulEpi::kGeluAuxBias;
  p.type = kern::MatmulType::kBf16;
  const int before = kern::matmul_vendor_declines();
  try {
    kern::matmul_try_vendor(&v, MatmulBackend::CublasLt, p, {});
    FAIL() << "a declined required call must throw";
  } catch (const llm::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("matmul m=3072 n=8192 k=768 op(A)=T op(B)=N epilogue gelu_aux_bias bf16"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("fake cuBLASLt declined it (the fake heuristic found no algorithm)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--matmul own"), std::string::npos) << msg;
  }
  EXPECT_EQ(kern::matmul_vendor_declines(), before) << "an error, not a counted fallback";
  try {
    kern::matmul_try_vendor(nullptr, MatmulBackend::CublasLt, problem(8, 8, 8), {});
    FAIL() << "required without a vendor must throw";
  } catch (const llm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul m=8 n=8 k=8"), std::string::npos) << e.what();
  }
}

// A linear layer's forward (with the GELU epilogue) and backward (with dGELU) through the fake vendor, required:
// the own kernel's bytes, and 3 plans (fwd, dinp, dweight) built once over two passes.
template <class T>
void expect_vendor_route_matches_own() {
  const int N = 15, C = 37, OC = 41;
  const auto inp = random_vec((size_t)N * C, 1), w = random_vec((size_t)OC * C, 2, -0.5f, 0.5f);
  const auto bias = random_vec(OC, 3), dout = random_vec((size_t)N * OC, 4), pre = random_vec((size_t)N * C, 5);
  auto pass = [&](kern::MatmulOptions opt) {
    DeviceArray<T> d_inp(inp), d_w(w), d_b(bias), d_dout(dout), d_pre(pre), out((size_t)N * OC), out_pre((size_t)N * OC),
        dinp((size_t)N * C), dw((size_t)OC * C);
    CUDA_CHECK(cudaMemset(dw.ptr, 0, dw.n * sizeof(T)));
    kern::matmul_forward<T>(out.ptr, out_pre.ptr, d_inp.ptr, d_w.ptr, d_b.ptr, N, C, OC, 0, opt);
    kern::matmul_backward<T>(dinp.ptr, dw.ptr, (T*)nullptr, d_dout.ptr, d_inp.ptr, d_w.ptr, d_pre.ptr, nullptr, N, C,
                             OC, 0, opt);
    CUDA_CHECK(cudaDeviceSynchronize());
    return std::vector<std::vector<T>>{out.download_raw(), out_pre.download_raw(), dinp.download_raw(),
                                       dw.download_raw()};
  };
  const auto own = pass(MatmulBackend::Own);
  FakeVendor v;
  ktest::ScopedVendor scope(&v);
  for (int rep = 0; rep < 2; rep++) {
    const auto got = pass(MatmulBackend::CublasLt);
    for (size_t i = 0; i < own.size(); i++)
      EXPECT_EQ(0, std::memcmp(own[i].data(), got[i].data(), own[i].size() * sizeof(T))) << "output " << i;
  }
  EXPECT_EQ(v.runs, 6);
  EXPECT_EQ(v.cache.backend().created, 3);
  EXPECT_EQ(v.cache.hits(), 3);
  ASSERT_EQ(v.cache.backend().asked.size(), 3u);
  EXPECT_EQ(v.cache.backend().asked[0].describe(),
            std::string("m=41 n=15 k=37 op(A)=T op(B)=N epilogue gelu_aux_bias ") + ktest::type_name<T>());
  EXPECT_EQ(v.cache.backend().asked[1].describe(),
            std::string("m=37 n=15 k=41 op(A)=N op(B)=N epilogue dgelu ") + ktest::type_name<T>());
  EXPECT_EQ(v.cache.backend().asked[2].describe(),
            std::string("m=37 n=41 k=15 op(A)=N op(B)=T epilogue none ") + ktest::type_name<T>());
}
TEST(MatmulVendorRoute, Fp32SameBytesAsOwnOnePlanPerProblem) { expect_vendor_route_matches_own<float>(); }
TEST(MatmulVendorRoute, Bf16SameBytesAsOwnOnePlanPerProblem) { expect_vendor_route_matches_own<__nv_bfloat16>(); }

}  // namespace
