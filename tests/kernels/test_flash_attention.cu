// test_flash_attention.cu — kernels/flash_attention.cuh (FlashAttention-2 on mma.sync/ldmatrix/cp.async, bf16)
// against ref::attention_forward/backward (fp32, on the same bf16-rounded inputs), every element.
//
// Shapes: head sizes 64 and 128; T = 1, T below one 64-row tile, T a multiple of the tile, T with a 2-row last
// tile (130) and T not a multiple of the dk/dv kernel's 32-row query tiles (hs 128); B and NH 1 and 2; each without
// dropout and with attention dropout p = 0.1 (the mask must be the reference's Philox mask, else errors are O(1)).
// Outputs are poisoned (0xFF = NaN) before the launches, so an element not written fails.
//
// Bounds (ARGUED, per element): |got − ref| ≤ 2^-7·term + 2^-7·|ref|, `term` the magnitude of what the element
// is summed from, computed here in double. bf16 keeps 8 significant bits: one round-to-nearest errs by ≤ 2^-8
// relative (unit roundoff).
//   Inputs are exact bf16 values for both sides, so only the kernel's own roundings differ from the reference:
//   (1) every stored output is rounded to bf16 once: ≤ 2^-8·|result| (inside the 2^-7·|ref| part);
//   (2) the probabilities P (the dropped weights W, and dS) are rounded to bf16 as the A operand of the second
//       matmul of each product: ≤ 2^-8 relative per term, so ≤ 2^-8 × Σ|terms| = 2^-8·term;
//   (3) fp32 work: scores from ≤ 128 exact bf16 products (error ≤ 128·2^-24·Σ|q_d k_d|·scale ≤ 2^-12 with |q|,|k| ≤ 2),
//       which moves P by ≤ 2^-12 relative (in kernel and reference alike), exp2f/expf within a few ulp, sums over
//       ≤ T ≤ 130 terms (≤ 2^-17 relative to their magnitude): together < 2^-11 × term.
//   So out and dv stay within (2^-8 + 2^-11)·term + 2^-8·|ref| < 2^-7·term + 2^-7·|ref|, with
//     term(out_i) = Σ_j W_ij |v_j|,   term(dv_j) = Σ_i W_ij |dout_i|.
//   dq and dk: dS_ij = P_ij (dP_ij − D_i). The kernel's D_i = dout_i · out_i uses its own bf16 output, so D carries
//   out's error: |ΔD_i| ≤ Σ_d |dout_id| ((2^-8 + 2^-11)·term(out_id) + 2^-8·|out_id|) ≤ 2^-7·E_i with
//   E_i = Σ_d |dout_id| (term(out_id) + |out_id|). Into dS that is ≤ P_ij·2^-7·E_i; (2) and (3) add
//   ≤ (2^-8 + 2^-11)·(|dS_ij| + P_ij (|dP_ij| + |D_i|)). Hence, with scale = 1/sqrt(hs),
//     term(dk_j) = scale Σ_i (|dS_ij| + P_ij (|dP_ij| + |D_i| + E_i)) |q_i|,  term(dq_i) = the same over j with |k_j|.
//   None of this depends on the CPU (x86 Intel or AMD): every bound is a rounding bound, not a measured margin.
//   (Measured on the layer: at most ~0.4 of these bounds, the largest for dv/out where (2) dominates.)
//   lse (fp32 in both): error of the scores (≤ 2^-12 as above, relative to max|s| ≤ 4·sqrt(hs)) plus log/sum
//   roundings, within the portable test's tolerance<float>(4·sqrt(hs) + log T).
#include "kernels/flash_attention.cuh"
#include "tests/kernels/attention_test_ref.h"
#include "tests/kernels/kernel_test_util.h"
#include "cpu/ops.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {

using bf16 = __nv_bfloat16;
using ktest::compare;
using ktest::DeviceArray;
using ktest::random_vec;
using ktest::round_through;

struct FlashShape {
  int B, T, C, NH;
  const char* name;
};
const std::vector<FlashShape>& flash_shapes() {
  static const std::vector<FlashShape> s = {
      {1, 1, 64, 1, "T=1 hs64"},
      {2, 50, 128, 2, "B2 T50 NH2 hs64 (one partial tile)"},
      {1, 130, 128, 2, "B1 T130 NH2 hs64 (3 tiles, last 2 rows)"},
      {1, 64, 128, 1, "B1 T64 NH1 hs128 (exact tile)"},
      {2, 77, 256, 2, "B2 T77 NH2 hs128 (partial tiles)"},
      {1, 1, 256, 2, "T=1 hs128"},
  };
  return s;
}

using ktest::part;
using ktest::ref_lse;

// The per-element term magnitudes of the header comment: out (B,T,C) and dqkv (B,T,3C).
struct Terms {
  std::vector<float> out, dqkv;
};
Terms term_scales(const std::vector<float>& qkv, const std::vector<float>& dout, const std::vector<float>& att /*P*/,
                  const std::vector<float>& out, int B, int T, int C, int NH, const llm::DropoutSpec& drop) {
  const int hs = C / NH;
  const size_t C3 = (size_t)3 * C;
  const double scale = 1.0 / std::sqrt((double)hs), ks = llm::dropout_scale(drop);
  Terms r;
  r.out.assign((size_t)B * T * C, 0.0f);
  r.dqkv.assign((size_t)B * T * C3, 0.0f);
  std::vector<double> tout((size_t)B * T * C, 0.0), tdq((size_t)B * T * C3, 0.0);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      auto Q = [&](int t, int d) { return (double)qkv[((size_t)b * T + t) * C3 + h * hs + d]; };
      auto K = [&](int t, int d) { return (double)qkv[((size_t)b * T + t) * C3 + C + h * hs + d]; };
      auto V = [&](int t, int d) { return (double)qkv[((size_t)b * T + t) * C3 + 2 * C + h * hs + d]; };
      auto dO = [&](int t, int d) { return (double)dout[((size_t)b * T + t) * C + h * hs + d]; };
      auto M = [&](int i, int j) {  // dropout multiplier of (i, j)
        if (drop.p <= 0.0f) return 1.0;
        return llm::dropout_keep(drop, (((uint64_t)b * NH + h) * T + i) * T + j) ? ks : 0.0;
      };
      std::vector<double> P((size_t)T * T, 0.0), dP((size_t)T * T, 0.0), D(T, 0.0), E(T, 0.0);
      for (int i = 0; i < T; i++)
        for (int j = 0; j <= i; j++) {
          P[(size_t)i * T + j] = att[(((size_t)b * NH + h) * T + i) * T + j];
          double dot = 0;
          for (int d = 0; d < hs; d++) dot += dO(i, d) * V(j, d);
          dP[(size_t)i * T + j] = M(i, j) * dot;
          D[i] += P[(size_t)i * T + j] * dP[(size_t)i * T + j];
          for (int d = 0; d < hs; d++) {
            tout[((size_t)b * T + i) * C + h * hs + d] += P[(size_t)i * T + j] * M(i, j) * std::fabs(V(j, d));
            tdq[((size_t)b * T + j) * C3 + 2 * C + h * hs + d] += P[(size_t)i * T + j] * M(i, j) * std::fabs(dO(i, d));
          }
        }
      for (int i = 0; i < T; i++)
        for (int d = 0; d < hs; d++) {
          const size_t o = ((size_t)b * T + i) * C + h * hs + d;
          E[i] += std::fabs(dO(i, d)) * (tout[o] + std::fabs(out[o]));
        }
      for (int i = 0; i < T; i++)
        for (int j = 0; j <= i; j++) {
          const double p = P[(size_t)i * T + j], dp = dP[(size_t)i * T + j];
          const double a = std::fabs(p * (dp - D[i])) + p * (std::fabs(dp) + std::fabs(D[i]) + E[i]);
          for (int d = 0; d < hs; d++) {
            tdq[((size_t)b * T + i) * C3 + h * hs + d] += scale * a * std::fabs(K(j, d));
            tdq[((size_t)b * T + j) * C3 + C + h * hs + d] += scale * a * std::fabs(Q(i, d));
          }
        }
    }
  for (size_t i = 0; i < tout.size(); i++) r.out[i] = (float)tout[i];
  for (size_t i = 0; i < tdq.size(); i++) r.dqkv[i] = (float)tdq[i];
  return r;
}

// The fp32 reference runs on one OpenMP thread (its results do not depend on the count): under TSan (CI) idle OpenMP
// workers spin in instrumented code and the test took > 10 min with 2 threads, 7 s with one.
struct OneOmpThread {
  int saved = omp_get_max_threads();
  OneOmpThread() { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(saved); }
};

TEST(FlashAttention, ForwardBackwardMatchReference) {
  OneOmpThread one_thread;
  for (const auto& s : flash_shapes()) {
    for (float p : {0.0f, 0.1f}) {
      SCOPED_TRACE(std::string(s.name) + " dropout " + std::to_string(p));
      std::printf("[%s dropout %.1f]\n", s.name, p);
      const int B = s.B, Tn = s.T, C = s.C, NH = s.NH;
      ASSERT_TRUE(kern::flash_attention_supported(C, NH, true));
      llm::DropoutSpec drop;
      drop.p = p;
      drop.seed = 0x1234567890abcdefull;
      drop.stream = llm::dropout_stream(1, llm::kDropAttn);
      const size_t nqkv = (size_t)B * Tn * 3 * C, nout = (size_t)B * Tn * C;
      const auto qkv = round_through<bf16>(random_vec(nqkv, 71 + Tn, -2.0f, 2.0f));  // scores spread beyond ±1
      const auto dout = round_through<bf16>(random_vec(nout, 72 + Tn));

      std::vector<float> r_out(nout), r_att((size_t)B * NH * Tn * Tn), r_dqkv(nqkv, 0.0f);
      ref::attention_forward(r_out.data(), r_att.data(), qkv.data(), B, Tn, C, NH, drop);
      ref::attention_backward(r_dqkv.data(), dout.data(), qkv.data(), r_att.data(), B, Tn, C, NH, drop);
      const Terms terms = term_scales(qkv, dout, r_att, r_out, B, Tn, C, NH, drop);

      DeviceArray<bf16> d_qkv(qkv), d_out(nout), d_dout(dout), d_dqkv(nqkv);
      DeviceArray<float> d_lse((size_t)B * NH * Tn), d_scratch((size_t)B * NH * Tn);
      kern::flash_attention_forward<bf16>(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, Tn, C, NH, drop, 0);
      kern::flash_attention_backward<bf16>(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_out.ptr, d_lse.ptr, B, Tn,
                                           C, NH, drop, 0);
      CUDA_CHECK(cudaDeviceSynchronize());

      const ktest::Tol tol = ktest::tolerance<bf16>(2.0);  // rtol 2^-7, atol 2^-7 × term (per element)
      compare("out", d_out.download(), r_out, tol, &terms.out);
      const double smax = 4.0 * std::sqrt((double)C / NH) + std::log((double)Tn);
      compare("lse", d_lse.download(), ref_lse(qkv, B, Tn, C, NH), ktest::tolerance<float>(smax));
      const auto dqkv = d_dqkv.download();
      for (int which = 0; which < 3; which++) {
        const auto tp = part(terms.dqkv, B, Tn, C, which);
        compare(which == 0 ? "dq" : which == 1 ? "dk" : "dv", part(dqkv, B, Tn, C, which), part(r_dqkv, B, Tn, C, which),
                tol, &tp);
      }
    }
  }
}

// Same inputs twice -> identical bytes (no atomics: every gradient element is summed by one thread in fixed order).
TEST(FlashAttention, BackwardDeterministic) {
  const int B = 1, Tn = 70, C = 128, NH = 2;
  const auto qkv = round_through<bf16>(random_vec((size_t)B * Tn * 3 * C, 81));
  const auto dout = round_through<bf16>(random_vec((size_t)B * Tn * C, 82));
  llm::DropoutSpec drop;
  drop.p = 0.1f;
  drop.seed = 7;
  std::vector<std::vector<bf16>> res;
  for (int rep = 0; rep < 2; rep++) {
    DeviceArray<bf16> d_qkv(qkv), d_out((size_t)B * Tn * C), d_dout(dout), d_dqkv(qkv.size());
    DeviceArray<float> d_lse((size_t)B * NH * Tn), d_scratch((size_t)B * NH * Tn);
    kern::flash_attention_forward<bf16>(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, Tn, C, NH, drop, 0);
    kern::flash_attention_backward<bf16>(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_out.ptr, d_lse.ptr, B, Tn, C,
                                         NH, drop, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    res.push_back(d_dqkv.download_raw());
  }
  EXPECT_EQ(0, std::memcmp(res[0].data(), res[1].data(), res[0].size() * sizeof(bf16)));
}

TEST(FlashAttention, SupportedShapesAndErrors) {
  EXPECT_TRUE(kern::flash_attention_supported(768, 12, true));    // GPT-2 124M: hs 64
  EXPECT_TRUE(kern::flash_attention_supported(1536, 12, true));   // hs 128
  EXPECT_FALSE(kern::flash_attention_supported(768, 12, false));  // fp32
  EXPECT_FALSE(kern::flash_attention_supported(384, 12, true));   // hs 32
  EXPECT_FALSE(kern::flash_attention_supported(100, 3, true));    // C % NH
  llm::DropoutSpec drop;
  {
    DeviceArray<float> qkv(3 * 128), out(128), lse(2);
    EXPECT_THROW(kern::flash_attention_forward<float>(out.ptr, lse.ptr, qkv.ptr, 1, 1, 128, 2, drop, 0), llm::Error);
  }
  DeviceArray<bf16> qkv(3 * 96), out(96), dqkv(3 * 96);
  DeviceArray<float> lse(3), scratch(3);
  EXPECT_THROW(kern::flash_attention_forward<bf16>(out.ptr, lse.ptr, qkv.ptr, 1, 1, 96, 3, drop, 0), llm::Error);  // hs 32
  EXPECT_THROW(kern::flash_attention_backward<bf16>(dqkv.ptr, scratch.ptr, out.ptr, qkv.ptr, out.ptr, lse.ptr, 1, 1, 96, 3,
                                                    drop, 0),
               llm::Error);
}

}  // namespace
