// Reduced-precision decode weights (cpu/infer_matrix.h, cpu/infer_qdot.h, gpt2_cpu generate --weights bf16|int8|q4).
//
// 1. The products: InferMatrix::forward (AVX-512 matrix-vector for n = 1, widened rows for n > 1, odd sizes that
//    exercise the masked tails / padding) against a double-precision sum over exactly the weights row() reports
//    and, for int8 / q4, exactly the quantised activations QuantActs::value() reports (so the integer kernel is
//    checked, not its closeness to fp32); bound = the worst case of an fp32 sum of K products,
//    2·K·2^-24·Σ|w·x| (Higham's γ_K, K = cols, plus the bias; the int8/q4 lanes are exact integers, then at most
//    3 fp32 roundings per term). A row's value does not depend on n (decode == prefill, bit for bit).
// 2. The quantisation: bf16 rows are round-to-nearest-even of the fp32 weights (host/checkpoint.h); int8 rows
//    are within scale/2 of them with scale = max|row| / 127; q4 blocks follow the rule in infer_matrix.h (checked
//    value by value, with zero blocks and blocks cut by the end of a row); activations follow infer_qdot.h.
// 3. The model: on the transformers fixtures (tests/fixtures/hf), the logits of bf16 / int8 decoding stay close
//    to fp32 along the fp32 greedy path (teacher forcing: the same tokens are fed to all three), and the free-running
//    greedy continuation is identical to fp32 for as long as this fixture's margins allow (measured: tiny_a 40/40
//    tokens in bf16 and int8; tiny_b 27/40 in bf16 — a near-tie there — and 40/40 in int8). q4 keeps 1/40 (tiny_a)
//    and 0/40 (tiny_b): these are random-init models whose logits are near-ties, and 4-bit weights move them by
//    O(1) (below); q4's wiring is checked exactly by Q4IsFp32OnDequantisedWeights instead.
//    Bounds, relative to max|logit| over the vocabulary: bf16 changes each weight by <= 2^-9 relative, so a linear
//    output moves by <= 2^-9·Σ|w·x| (not 2^-9·|y|: the sum cancels), compounded through 2-3 blocks, LayerNorms and
//    the head; measured 5.6e-3 (tiny_a) / 1.1e-2 (tiny_b): bound 2.5e-2. int8 moves a weight by <= max|row|/254,
//    up to ~8x bf16's step for typical weights, and its activations are rounded to int8 (blocks of 32) too:
//    measured 2.9e-2 / 5.7e-2: bound 8e-2. q4's step is max|block|/8, ~16x int8's: measured 0.50 / 0.49, bound
//    0.75 (only catches a broken format). A broken format (wrong scale, byte order or row) gives O(1) errors.
// 4. The CLI: --weights selects the format (same ids as in-process), a bad value exits 2.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "cpu/gpt2_infer.h"
#include "cpu/infer_matrix.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/hf_gpt2.h"
#include "test_weights_util.h"

namespace {

using llm::WeightFormat;
const WeightFormat kFormats[] = {WeightFormat::kFp32, WeightFormat::kBf16, WeightFormat::kInt8, WeightFormat::kQ4};
bool quantises_input(WeightFormat f) { return f == WeightFormat::kInt8 || f == WeightFormat::kQ4; }

std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST(InferMatrix, ProductsMatchDoubleReference) {
  const int shapes[][2] = {{5, 37}, {64, 48}, {13, 768}, {9, 16}, {3, 3}, {130, 200}, {6, 129}, {7, 300}};
  for (auto [rows, cols] : shapes)
    for (WeightFormat f : kFormats)
      for (int n : {1, 3}) {
        SCOPED_TRACE(std::string(llm::weight_format_name(f)) + " " + std::to_string(rows) + "x" +
                     std::to_string(cols) + " n=" + std::to_string(n));
        const auto w = randv((size_t)rows * cols, rows * 100 + cols, 0.5f), x = randv((size_t)n * cols, 7, 2.0f);
        const auto b = randv(rows, 9);
        llm::InferMatrix m;
        m.set(w.data(), rows, cols, f);
        std::vector<float> out((size_t)n * rows, NAN), wr(cols), one(rows, NAN);
        m.forward(out.data(), x.data(), b.data(), n);
        // the activations the product multiplies with: fp32 as given, or their int8 quantisation
        std::vector<float> xv(x);
        if (quantises_input(f)) {
          llm::QuantActs a;
          a.quantize(x.data(), n, cols, f == WeightFormat::kInt8 ? llm::kInt8Offset : llm::kQ4Offset);
          for (int i = 0; i < n; i++)
            for (int c = 0; c < cols; c++) xv[(size_t)i * cols + c] = a.value(i, c);
        }
        for (int r = 0; r < rows; r++) {
          m.row(r, wr.data());
          for (int i = 0; i < n; i++) {
            double ref = b[r], mag = std::fabs(b[r]);
            for (int c = 0; c < cols; c++) {
              ref += (double)wr[c] * xv[(size_t)i * cols + c];
              mag += std::fabs((double)wr[c] * xv[(size_t)i * cols + c]);
            }
            const double bound = 2.0 * (cols + 1) * std::ldexp(1.0, -24) * mag;
            ASSERT_LE(std::fabs(out[(size_t)i * rows + r] - ref), bound) << "row " << r << " input " << i;
          }
        }
        if (quantises_input(f) && n > 1) {  // input row 1 alone gives the same values, bit for bit
          m.forward(one.data(), x.data() + cols, b.data(), 1);
          for (int r = 0; r < rows; r++) ASSERT_EQ(one[r], out[(size_t)rows + r]) << "row " << r;
        }
      }
}

TEST(InferMatrix, QuantisationRules) {
  const int rows = 40, cols = 100;
  auto w = randv((size_t)rows * cols, 3, 0.3f);
  for (int c = 0; c < cols; c++) w[5 * cols + c] = 0.0f;  // an all-zero row must not divide by zero
  llm::InferMatrix bf, i8;
  bf.set(w.data(), rows, cols, WeightFormat::kBf16);
  i8.set(w.data(), rows, cols, WeightFormat::kInt8);
  EXPECT_EQ(bf.bytes(), (size_t)rows * cols * 2);
  EXPECT_EQ(i8.bytes(), (size_t)rows * 128 + 4 * rows);  // rows padded to a multiple of 64 bytes
  std::vector<float> rb(cols), ri(cols);
  for (int r = 0; r < rows; r++) {
    bf.row(r, rb.data());
    i8.row(r, ri.data());
    float mx = 0.0f;
    for (int c = 0; c < cols; c++) mx = std::max(mx, std::fabs(w[(size_t)r * cols + c]));
    const float scale = mx > 0 ? mx / 127.0f : 1.0f;
    for (int c = 0; c < cols; c++) {
      const float v = w[(size_t)r * cols + c];
      ASSERT_EQ(rb[c], llm::bf16_to_fp32(llm::fp32_to_bf16(v))) << r << "," << c;
      // q = nearbyint(fl(v/s)): fl(v/s) is ≤ 127u off (u = 2^-24, |v/s| ≤ 127), so |v − q·s| ≤ (0.5 + 127u)·s, and
      // row() rounds q·s (≤ 127u·s): ≤ 0.5·s·(1 + 508u); bound (1 + 512u) (was 1 + 1e-6 ≈ 17u, short of that)
      ASSERT_LE(std::fabs(ri[c] - v), 0.5f * scale * (1 + 512 * 0x1p-24f)) << r << "," << c;
    }
  }
  EXPECT_THROW(llm::parse_weight_format("int4"), llm::Error);
}

TEST(InferMatrix, Q4QuantisationRules) {
  const int rows = 6, cols = 200;  // blocks of 32: 6 full + one of 8; columns 128.. live in the high nibbles
  auto w = randv((size_t)rows * cols, 11, 0.2f);
  for (int c = 32; c < 64; c++) w[2 * cols + c] = 0.0f;  // an all-zero block
  w[3 * cols + 70] = 0.5f;                               // a positive extreme: d < 0, q(0.5) = -8
  w[3 * cols + 71] = -0.5f;                              // ... and its opposite clamps to 7
  w[4 * cols + 195] = -0.9f;                             // a negative extreme in the short last block
  llm::InferMatrix m;
  m.set(w.data(), rows, cols, WeightFormat::kQ4);
  EXPECT_EQ(m.bytes(), (size_t)8 * (256 / 2 + 2 * 256 / 32));  // 4 bits + a bf16 per 32, padded to 128 columns and 8 rows
  std::vector<float> got(cols);
  int clamped = 0;
  for (int r = 0; r < rows; r++) {
    m.row(r, got.data());
    for (int b = 0; b * 32 < cols; b++) {
      const int c0 = b * 32, c1 = std::min(cols, c0 + 32);
      float mx = 0.0f;
      for (int c = c0; c < c1; c++)
        if (std::fabs(w[(size_t)r * cols + c]) > std::fabs(mx)) mx = w[(size_t)r * cols + c];
      const float d = llm::bf16_to_fp32(llm::fp32_to_bf16(mx / -8.0f));
      for (int c = c0; c < c1; c++) {
        const float v = w[(size_t)r * cols + c];
        if (d == 0.0f) {
          ASSERT_EQ(got[c], 0.0f) << r << "," << c;
          continue;
        }
        const float q = std::max(-8.0f, std::min(7.0f, std::nearbyint(v * (1.0f / d))));
        ASSERT_EQ(got[c], q * d) << r << "," << c;
        const bool clamp = q == 7.0f && std::fabs(v - q * d) > 0.5f * std::fabs(d);
        clamped += clamp;
        // fl(v·fl(1/d)) is ≤ 2u·8.5 off v/d, so |v − q·d| ≤ (0.5 + 17u)·|d| (q·d: 4 × 8 bits, exact) = 0.5|d|(1 + 34u):
        // bound 1 + 64u (was 1 + 1e-6 ≈ 17u). Clamped (+8 → 7): d = bf16(mx/−8) is ≤ 2^-9 relative off, so
        // |v − 7d| ≤ |d|·(1 + 8·2^-9) = |d|·(1 + 1/64); bound 1 + 1/32.
        ASSERT_LE(std::fabs(v - got[c]), (clamp ? 1.0f + 1.0f / 32 : 0.5f * (1 + 64 * 0x1p-24f)) * std::fabs(d)) << r << "," << c;
        if (v == mx) {
          ASSERT_EQ(q, -8.0f) << "the extreme maps to -8";
        }
      }
    }
  }
  EXPECT_GE(clamped, 1);  // w[3][71]
  EXPECT_EQ(llm::parse_weight_format("q4"), WeightFormat::kQ4);
}

TEST(QuantActs, BlockScalesRoundingPaddingAndLaneOffsets) {
  const int n = 2, cols = 70;  // blocks 32 + 32 + 6, padded to 128
  auto x = randv((size_t)n * cols, 5, 3.0f);
  for (int c = 32; c < 64; c++) x[cols + c] = 0.0f;  // row 1, block 1: all zero
  x[5] = -3.5f;                                      // row 0, block 0: the extreme maps to -127
  llm::QuantActs a, a4;
  a.quantize(x.data(), n, cols, llm::kInt8Offset);
  a4.quantize(x.data(), n, cols, llm::kQ4Offset);
  ASSERT_EQ(a.padded(), 128);
  for (int i = 0; i < n; i++) {
    for (int b = 0; b < 4; b++) {
      float mx = 0.0f;
      for (int c = b * 32; c < std::min(cols, b * 32 + 32); c++) mx = std::max(mx, std::fabs(x[(size_t)i * cols + c]));
      ASSERT_EQ(a.scale(i, b), mx / 127.0f) << i << "," << b;
      for (int c = b * 32; c < b * 32 + 32; c++) {
        const int want = c < cols && mx > 0 ? (int)std::nearbyint(x[(size_t)i * cols + c] * (127.0f / mx)) : 0;
        ASSERT_EQ(a.q(i)[c], want) << i << "," << c;
        ASSERT_LE(std::abs(want), 127);
        if (c < cols) {
          // q = nearbyint(x·fl(127/mx)), s = fl(mx/127): 3 roundings between that and x/s, ≤ 381u (|x/s| ≤ 127);
          // value() = q·s rounds once more (≤ 127u·s): |value − x| ≤ 0.5·s·(1 + 1016u); bound 1 + 1024u (was
          // 1 + 1e-5 ≈ 168u, short of that)
          ASSERT_LE(std::fabs(a.value(i, c) - x[(size_t)i * cols + c]), 0.5f * mx / 127.0f * (1 + 1024 * 0x1p-24f));
        }
      }
    }
    for (int l = 0; l < 32; l++) {
      const int8_t* g = a.q(i) + 4 * l;
      ASSERT_EQ(a.lane_offset(i)[l], -128 * (g[0] + g[1] + g[2] + g[3])) << l;
      ASSERT_EQ(a4.lane_offset(i)[l], -8 * (g[0] + g[1] + g[2] + g[3])) << l;
      ASSERT_EQ(a4.q(i)[4 * l], g[0]) << l;  // the values do not depend on the offset
      ASSERT_EQ(a.lane_scale(i)[l], a.scale(i, l / 8)) << l;
    }
  }
  EXPECT_EQ(a.scale(1, 1), 0.0f);
  EXPECT_EQ(a.q(0)[5], -127);
  // a product refuses activations quantised for the other format's offset (its lanes would start wrong)
  std::vector<uint8_t> w(4 * 64, llm::kInt8Offset);
  std::vector<uint16_t> d(4 * 4, 0);
  const float row_scale[4] = {1, 1, 1, 1};
  std::vector<float> out(4 * n);
  EXPECT_THROW(llm::qgemv_int8(out.data(), w.data(), row_scale, 64, a4, nullptr, 4, llm::Part{0, 1}), llm::Error);
  EXPECT_THROW(llm::qgemv_q4(out.data(), w.data(), d.data(), 64, 4, a, nullptr, 4, llm::Part{0, 1}), llm::Error);
}

namespace {

// Logits of `model` after prefill(prompt) and after each step(tokens[i]).
std::vector<std::vector<float>> forced_logits(llm::LogitsModel& model, const std::vector<int>& prompt,
                                              const std::vector<int>& tokens) {
  const int V = model.config().vocab_size;
  std::vector<std::vector<float>> out;
  const float* l = model.prefill(prompt.data(), (int)prompt.size());
  out.emplace_back(l, l + V);
  for (int t : tokens) {
    l = model.step(t);
    out.emplace_back(l, l + V);
  }
  return out;
}

std::vector<int> greedy(llm::LogitsModel& model, const std::vector<int>& prompt, int n) {
  llm::GenerateOptions opt;
  opt.max_new_tokens = n;
  opt.sampling.temperature = 0.0f;
  return llm::generate_tokens(model, prompt, opt);
}

}  // namespace

TEST(DecodeFormats, LogitsBoundedAndGreedyIdenticalOnFixtures) {
  struct Case {
    const char* name;
    int bf16_same, int8_same;  // tokens of the free-running greedy continuation that equal fp32's (measured)
    int q4_same;
  } cases[] = {{"tiny_a", 40, 40, 1}, {"tiny_b", 27, 40, 0}};
  for (const Case& k : cases) {
    const llm::LoadedModel m = llm::load_model(wt::fixture(k.name));
    const std::vector<int> prompt = wt::read_json(wt::fixture(std::string(k.name) + "/ref.json"))["prompt"];
    llm::KVCacheGPT2 ref(m.config, std::vector<float>(m.params));
    const std::vector<int> path = greedy(ref, prompt, 40);
    const auto want = forced_logits(ref, prompt, std::vector<int>(path.begin(), path.end() - 1));
    for (WeightFormat f : {WeightFormat::kBf16, WeightFormat::kInt8, WeightFormat::kQ4}) {
      SCOPED_TRACE(std::string(k.name) + " " + llm::weight_format_name(f));
      llm::KVCacheGPT2 q(m.config, std::vector<float>(m.params), f);
      const auto got = forced_logits(q, prompt, std::vector<int>(path.begin(), path.end() - 1));
      double worst = 0;
      for (size_t p = 0; p < want.size(); p++) {
        double err = 0, mx = 0;
        for (size_t v = 0; v < want[p].size(); v++) {
          err = std::max(err, (double)std::fabs(got[p][v] - want[p][v]));
          mx = std::max(mx, (double)std::fabs(want[p][v]));
        }
        worst = std::max(worst, err / mx);
      }
      std::printf("%s %s: max |logit error| / max |logit| = %.3g over %zu positions\n", k.name,
                  llm::weight_format_name(f), worst, want.size());
      EXPECT_LE(worst, f == WeightFormat::kBf16 ? 2.5e-2 : f == WeightFormat::kInt8 ? 8e-2 : 0.75);
      const std::vector<int> free_run = greedy(q, prompt, 40);
      int same = 0;
      while (same < 40 && free_run[same] == path[same]) same++;
      std::printf("%s %s: greedy identical to fp32 for %d of 40 tokens\n", k.name, llm::weight_format_name(f), same);
      EXPECT_GE(same, f == WeightFormat::kBf16 ? k.bf16_same : f == WeightFormat::kInt8 ? k.int8_same : k.q4_same);
      // the no-cache mode of the same format gives the same tokens (prefill path vs decode path)
      llm::KVCacheGPT2 q_nc(m.config, std::vector<float>(m.params), f, false);
      EXPECT_EQ(greedy(q_nc, prompt, 20), std::vector<int>(free_run.begin(), free_run.begin() + 20));
    }
  }
}

// A decode step is one parallel region whose threads split every product's rows and the attention heads, each
// thread keeping its own copy of the residual row (KVCacheGPT2::forward_one): every value is computed by the same
// code whatever the split, so 1, 2 and 3 threads must give the same logits bit for bit, in every format.
TEST(DecodeFormats, DecodeStepIdenticalForAnyThreadCount) {
  const llm::LoadedModel m = llm::load_model(wt::fixture("tiny_b"));
  const std::vector<int> prompt = wt::read_json(wt::fixture("tiny_b/ref.json"))["prompt"];
  const std::vector<int> forced = {5, 17, 3, 99, 42, 7, 250, 1, 64, 12};
  const int saved = omp_get_max_threads();
  for (WeightFormat f : kFormats) {
    SCOPED_TRACE(llm::weight_format_name(f));
    std::vector<std::vector<std::vector<float>>> runs;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);  // before construction: the per-thread buffers are sized then
      llm::KVCacheGPT2 q(m.config, std::vector<float>(m.params), f);
      runs.push_back(forced_logits(q, prompt, forced));
    }
    omp_set_num_threads(saved);
    for (size_t r = 1; r < runs.size(); r++)
      for (size_t p = 0; p < forced.size() + 1; p++)
        for (size_t v = 0; v < runs[0][p].size(); v++)
          ASSERT_EQ(runs[r][p][v], runs[0][p][v]) << (r + 1) << " threads, position " << p << ", logit " << v;
  }
}

// The q4 model is the fp32 model run on the dequantised q4 weights, up to the int8 activation rounding: tiny_b
// (untied head, so every matrix the q4 model quantises can be replaced in the fp32 parameters). This checks the
// wiring exactly where the comparison with fp32 cannot (4-bit weights move these random-init logits by O(1)).
// Bound: the activation rounding is the int8 rounding of the int8 format (|error| <= max|block| / 254 per value),
// which measured <= 5.7e-2 against fp32 above; measured here 4.4e-2.
TEST(DecodeFormats, Q4IsFp32OnDequantisedWeights) {
  const llm::LoadedModel m = llm::load_model(wt::fixture("tiny_b"));
  ASSERT_FALSE(m.config.tied_head);
  const std::vector<int> prompt = wt::read_json(wt::fixture("tiny_b/ref.json"))["prompt"];
  const int C = m.config.channels, L = m.config.num_layers, V = m.config.vocab_size;
  const auto off = llm::param_offsets(m.config);
  std::vector<float> deq(m.params);
  auto dequantise = [&](size_t o, int rows, int cols) {
    llm::InferMatrix q;
    q.set(m.params.data() + o, rows, cols, WeightFormat::kQ4);
    for (int r = 0; r < rows; r++) q.row(r, deq.data() + o + (size_t)r * cols);
  };
  for (int l = 0; l < L; l++) {
    dequantise(off[llm::kQkvw] + (size_t)l * 3 * C * C, 3 * C, C);
    dequantise(off[llm::kAttprojw] + (size_t)l * C * C, C, C);
    dequantise(off[llm::kFcw] + (size_t)l * 4 * C * C, 4 * C, C);
    dequantise(off[llm::kFcprojw] + (size_t)l * 4 * C * C, C, 4 * C);
  }
  dequantise(off[llm::kLmHead], V, C);
  llm::KVCacheGPT2 sim(m.config, std::move(deq)), q4(m.config, std::vector<float>(m.params), WeightFormat::kQ4);
  const std::vector<int> path = greedy(sim, prompt, 30);
  const auto want = forced_logits(sim, prompt, std::vector<int>(path.begin(), path.end() - 1));
  const auto got = forced_logits(q4, prompt, std::vector<int>(path.begin(), path.end() - 1));
  double worst = 0;
  for (size_t p = 0; p < want.size(); p++) {
    double err = 0, mx = 0;
    for (size_t v = 0; v < want[p].size(); v++) {
      err = std::max(err, (double)std::fabs(got[p][v] - want[p][v]));
      mx = std::max(mx, (double)std::fabs(want[p][v]));
    }
    worst = std::max(worst, err / mx);
  }
  std::printf("tiny_b q4 vs fp32 on dequantised weights: max |logit error| / max |logit| = %.3g\n", worst);
  EXPECT_LE(worst, 8e-2);
}

#ifdef GPT2_CPU_BIN
TEST(DecodeFormats, CliWeightsFlag) {
  const std::vector<int> prompt = wt::read_json(wt::fixture("tiny_a/ref.json"))["prompt"];
  std::string ids;
  for (int t : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const llm::LoadedModel m = llm::load_model(wt::fixture("tiny_a"));
  for (const char* f : {"bf16", "int8", "q4"}) {
    llm::KVCacheGPT2 q(m.config, std::vector<float>(m.params), llm::parse_weight_format(f));
    std::string want;
    for (int t : greedy(q, prompt, 30)) want += std::to_string(t) + " ";
    auto r = wt::run(std::string(GPT2_CPU_BIN) + " generate --model " + wt::fixture("tiny_a") + " --prompt-ids " + ids +
                         " --ids --no-echo -t 0 -n 30 --weights " + f, "fmt_cli");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, want + "\n") << f;
  }
  auto bad = wt::run(std::string(GPT2_CPU_BIN) + " generate --model " + wt::fixture("tiny_a") +
                         " --prompt-ids 1,2 --ids --weights int4", "fmt_bad");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--weights"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.out, "");
}
#endif
