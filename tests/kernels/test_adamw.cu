// test_adamw.cu — AdamW kernel vs ref::adamw_update. fp32: params updated in place, compared element by element.
// bf16: the fp32 master weights are compared to the reference, and every bf16 parameter must be EXACTLY the
// stochastic rounding of its master value with the documented random bits (one of its two bf16 neighbours),
// reproducible for a seed, different for another seed, and unbiased on average.
#include "tests/kernels/kernel_test_util.h"
#include "kernels/adamw.cuh"
#include "cpu/ops.h"

using namespace ktest;

struct AdamHyper {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
  int t = 3;
};

// Inputs: params in [-1,1], grads in [-1,1], m in [-0.1,0.1], v in [1e-3, 1e-2] (a few steps in).
struct AdamState {
  std::vector<float> p, g, m, v;
  AdamState(size_t n, uint64_t seed)
      : p(random_vec(n, seed)), g(random_vec(n, seed + 1)), m(random_vec(n, seed + 2, -0.1f, 0.1f)),
        v(random_vec(n, seed + 3, 1e-3f, 1e-2f)) {}
};

// Per-element term scales of the three outputs (see kernel_test_util.h): m = β1 m + (1-β1) g, v likewise,
// p = p − lr·(m̂/(√v̂+eps) + wd·p).
static void term_scales(const AdamState& s0, const AdamHyper& h, float grad_scale, std::vector<float>& sp,
                        std::vector<float>& sm, std::vector<float>& sv) {
  const size_t n = s0.p.size();
  sp.resize(n);
  sm.resize(n);
  sv.resize(n);
  const float bc1 = 1.0f - std::pow(h.beta1, (float)h.t), bc2 = 1.0f - std::pow(h.beta2, (float)h.t);
  for (size_t i = 0; i < n; i++) {
    const float g = s0.g[i] * grad_scale;
    sm[i] = h.beta1 * std::fabs(s0.m[i]) + (1 - h.beta1) * std::fabs(g);
    sv[i] = h.beta2 * s0.v[i] + (1 - h.beta2) * g * g;
    const float vi = h.beta2 * s0.v[i] + (1 - h.beta2) * g * g;
    sp[i] = std::fabs(s0.p[i]) + h.lr * (sm[i] / bc1 / (std::sqrt(vi / bc2) + h.eps) + h.weight_decay * std::fabs(s0.p[i]));
  }
}

static void check_fp32(size_t n, float grad_scale) {
  const std::string tag = "fp32 n=" + std::to_string(n) + " grad_scale=" + std::to_string(grad_scale);
  SCOPED_TRACE(tag);
  const AdamHyper h;
  const AdamState s0(n, 91);
  AdamState r = s0;
  for (auto& g : r.g) g *= grad_scale;  // the reference gets pre-scaled gradients (exact for a power of two)
  ref::adamw_update(r.p.data(), r.g.data(), r.m.data(), r.v.data(), n, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                    h.t);
  DeviceArray<float> d_p(s0.p), d_g(s0.g), d_m(s0.m), d_v(s0.v);
  kern::adamw_update(d_p.ptr, (float*)nullptr, d_g.ptr, d_m.ptr, d_v.ptr, n, h.lr, h.beta1, h.beta2, h.eps,
                     h.weight_decay, h.t, /*seed=*/1234, 0, grad_scale);
  std::vector<float> sp, sm, sv;
  term_scales(s0, h, grad_scale, sp, sm, sv);
  compare(tag + " params", d_p.download(), r.p, tolerance<float>(1.0), &sp);
  compare(tag + " m", d_m.download(), r.m, tolerance<float>(1.0), &sm);
  compare(tag + " v", d_v.download(), r.v, tolerance<float>(1.0), &sv);
}

TEST(KernelAdamW, Fp32) {
  for (size_t n : {1000, 4099, 65536 + 7}) check_fp32(n, 1.0f);
  check_fp32(4099, 0.5f);
}

// One bf16 step: returns the bf16 params' bits and the master weights.
static void run_bf16(const AdamState& s0, const AdamHyper& h, uint64_t seed, std::vector<__nv_bfloat16>& params,
                     std::vector<float>& master, std::vector<float>& m, std::vector<float>& v) {
  const size_t n = s0.p.size();
  DeviceArray<__nv_bfloat16> d_p(round_through<__nv_bfloat16>(s0.p)), d_g(s0.g);
  DeviceArray<float> d_master(s0.p), d_m(s0.m), d_v(s0.v);
  kern::adamw_update(d_p.ptr, d_master.ptr, d_g.ptr, d_m.ptr, d_v.ptr, n, h.lr, h.beta1, h.beta2, h.eps,
                     h.weight_decay, h.t, seed, 0);
  params = d_p.download_raw();
  master = d_master.download();
  m = d_m.download();
  v = d_v.download();
}

TEST(KernelAdamW, Bf16StochasticRounding) {
  const size_t n = 4099;
  const AdamHyper h;
  AdamState s0(n, 95);
  s0.g = round_through<__nv_bfloat16>(s0.g);  // grads are stored in bf16
  AdamState r = s0;
  ref::adamw_update(r.p.data(), r.g.data(), r.m.data(), r.v.data(), n, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                    h.t);
  const uint64_t seed = 0xfeedbeef12345ull;
  std::vector<__nv_bfloat16> params;
  std::vector<float> master, m, v;
  run_bf16(s0, h, seed, params, master, m, v);
  std::vector<float> sp, sm, sv;
  term_scales(s0, h, 1.0f, sp, sm, sv);
  // master weights, m and v are fp32 in bf16 mode too: fp32 tolerance
  compare("bf16 master weights", master, r.p, tolerance<float>(1.0), &sp);
  compare("bf16 m", m, r.m, tolerance<float>(1.0), &sm);
  compare("bf16 v", v, r.v, tolerance<float>(1.0), &sv);

  // every bf16 param == stochastic rounding of ITS master value with the documented bits; count round-ups
  size_t exact = 0, ups = 0;
  double expected_ups = 0, var = 0;
  for (size_t i = 0; i < n; i++) {
    const __nv_bfloat16 want = kern::stochastic_round_bf16(master[i], kern::rounding_bits(seed, i));
    const float got = __bfloat162float(params[i]);
    exact += got == __bfloat162float(want);
    uint32_t u;
    std::memcpy(&u, &master[i], 4);
    const float down = [&] { uint32_t t = u & 0xffff0000u; float f; std::memcpy(&f, &t, 4); return f; }();
    EXPECT_TRUE(got == down || std::fabs(got) > std::fabs(down)) << i;
    const double frac = (u & 0xffffu) / 65536.0;  // probability of rounding up (away from zero)
    expected_ups += frac;
    var += frac * (1 - frac);
    ups += got != down;
  }
  EXPECT_EQ(exact, n) << "bf16 params are not the documented stochastic rounding of the master weights";
  // unbiased: the number of round-ups is binomial-like around Σ frac (6 sigma)
  EXPECT_NEAR((double)ups, expected_ups, 6 * std::sqrt(var) + 1);
  std::printf("  bf16 SR: %zu/%zu params exactly as documented, %zu rounded up (expected %.1f ± %.1f)\n", exact, n, ups,
              expected_ups, std::sqrt(var));

  // reproducible for the same seed, different for another seed
  std::vector<__nv_bfloat16> again, other;
  std::vector<float> master2, m2, v2;
  run_bf16(s0, h, seed, again, master2, m2, v2);
  EXPECT_EQ(0, std::memcmp(params.data(), again.data(), n * sizeof(__nv_bfloat16)));
  run_bf16(s0, h, seed + 1, other, master2, m2, v2);
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) differ += __bfloat162float(other[i]) != __bfloat162float(params[i]);
  EXPECT_GT(differ, n / 10) << "the seed does not change the rounding";
}

// Stochastic rounding in isolation: exact bf16 values are kept, inf/NaN pass through, and the rounding
// probability follows the dropped bits.
TEST(KernelAdamW, StochasticRoundBasics) {
  EXPECT_EQ(__bfloat162float(kern::stochastic_round_bf16(1.5f, 0xffffffffu)), 1.5f);
  EXPECT_EQ(__bfloat162float(kern::stochastic_round_bf16(-2.0f, 0u)), -2.0f);
  EXPECT_TRUE(std::isinf(__bfloat162float(kern::stochastic_round_bf16(INFINITY, 0u))));
  EXPECT_TRUE(std::isnan(__bfloat162float(kern::stochastic_round_bf16(NAN, 0u))));
  const float x = 1.0f + 0.25f * 0.0078125f;  // a quarter of the way from 1 to the next bf16 (1 + 2^-7)
  int up = 0;
  const int trials = 20000;
  for (int i = 0; i < trials; i++) up += __bfloat162float(kern::stochastic_round_bf16(x, kern::rounding_bits(7, i))) > 1.0f;
  // binomial sd = sqrt(0.25·0.75/20000) = 3.1e-3: 0.02 ≈ 6.5 sd (integer Philox bits: the same count on every CPU)
  EXPECT_NEAR(up / (double)trials, 0.25, 0.02);
  EXPECT_EQ(__bfloat162float(kern::stochastic_round_bf16(-x, 0u)), -1.0078125f);  // bits 0: always away from zero
}

// index_offset (ZeRO-1: each rank updates its slice of a tensor): updating [0, k) and [k, n) in two launches with
// index_offset k for the second gives bit for bit the params, master, m and v of one whole launch.
TEST(KernelAdamW, Bf16PiecesWithIndexOffsetEqualOneLaunch) {
  const size_t n = 4099, k = 1531;
  const AdamHyper h;
  AdamState s0(n, 97);
  s0.g = round_through<__nv_bfloat16>(s0.g);
  const uint64_t seed = 0xabcdef987ull;
  std::vector<__nv_bfloat16> whole;
  std::vector<float> master, m, v;
  run_bf16(s0, h, seed, whole, master, m, v);
  DeviceArray<__nv_bfloat16> d_p(round_through<__nv_bfloat16>(s0.p)), d_g(s0.g);
  DeviceArray<float> d_master(s0.p), d_m(s0.m), d_v(s0.v);
  for (size_t a : {(size_t)0, k}) {
    const size_t len = a == 0 ? k : n - k;
    kern::adamw_update(d_p.ptr + a, d_master.ptr + a, d_g.ptr + a, d_m.ptr + a, d_v.ptr + a, len, h.lr, h.beta1,
                       h.beta2, h.eps, h.weight_decay, h.t, seed, 0, 1.0f, 512, /*index_offset=*/a);
  }
  const std::vector<__nv_bfloat16> pieces = d_p.download_raw();
  EXPECT_EQ(0, std::memcmp(whole.data(), pieces.data(), n * sizeof(__nv_bfloat16)));
  EXPECT_TRUE(d_master.download() == master);
  EXPECT_TRUE(d_m.download() == m);
  EXPECT_TRUE(d_v.download() == v);
}
