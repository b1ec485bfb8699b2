// Reduced-precision decode weights (cpu/infer_matrix.h, gpt2_cpu generate --weights bf16|int8).
//
// 1. The products: InferMatrix::forward (AVX-512 matrix-vector for n = 1, widened rows for n > 1, odd sizes that
//    exercise the masked tails) against a double-precision sum over exactly the weights row() reports; bound =
//    the worst case of an fp32 sum of K products, 2·K·2^-24·Σ|w·x| (Higham's γ_K, K = cols, plus the bias).
// 2. The quantisation: bf16 rows are round-to-nearest-even of the fp32 weights (host/checkpoint.h); int8 rows
//    are within scale/2 of them with scale = max|row| / 127.
// 3. The model: on the transformers fixtures (tests/fixtures/hf), the logits of bf16 / int8 decoding stay close
//    to fp32 along the fp32 greedy path (teacher forcing: the same tokens are fed to all three), and the free-running
//    greedy continuation is identical to fp32 for as long as this fixture's margins allow (measured: tiny_a 40/40
//    tokens in both formats; tiny_b 27/40 in bf16 — a near-tie there — and 40/40 in int8).
//    Bounds, relative to max|logit| over the vocabulary: bf16 changes each weight by <= 2^-9 relative, so a linear
//    output moves by <= 2^-9·Σ|w·x| (not 2^-9·|y|: the sum cancels), compounded through 2-3 blocks, LayerNorms and
//    the head; measured 5.6e-3 (tiny_a) / 1.1e-2 (tiny_b): bound 2.5e-2. int8 moves a weight by <= max|row|/254,
//    up to ~8x bf16's step for typical weights: measured 2.6e-2 / 3.6e-2: bound 8e-2. A broken format (wrong
//    scale, byte order or row) gives O(1) errors and fails them.
// 4. The CLI: --weights selects the format (same ids as in-process), a bad value exits 2.
#include <gtest/gtest.h>

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
const WeightFormat kFormats[] = {WeightFormat::kFp32, WeightFormat::kBf16, WeightFormat::kInt8};

std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST(InferMatrix, ProductsMatchDoubleReference) {
  const int shapes[][2] = {{5, 37}, {64, 48}, {13, 768}, {9, 16}, {3, 3}, {130, 200}};
  for (auto [rows, cols] : shapes)
    for (WeightFormat f : kFormats)
      for (int n : {1, 3}) {
        SCOPED_TRACE(std::string(llm::weight_format_name(f)) + " " + std::to_string(rows) + "x" +
                     std::to_string(cols) + " n=" + std::to_string(n));
        const auto w = randv((size_t)rows * cols, rows * 100 + cols, 0.5f), x = randv((size_t)n * cols, 7, 2.0f);
        const auto b = randv(rows, 9);
        llm::InferMatrix m;
        m.set(w.data(), rows, cols, f);
        std::vector<float> out((size_t)n * rows, NAN), wr(cols);
        m.forward(out.data(), x.data(), b.data(), n);
        for (int r = 0; r < rows; r++) {
          m.row(r, wr.data());
          for (int i = 0; i < n; i++) {
            double ref = b[r], mag = std::fabs(b[r]);
            for (int c = 0; c < cols; c++) {
              ref += (double)wr[c] * x[(size_t)i * cols + c];
              mag += std::fabs((double)wr[c] * x[(size_t)i * cols + c]);
            }
            const double bound = 2.0 * (cols + 1) * std::ldexp(1.0, -24) * mag;
            ASSERT_LE(std::fabs(out[(size_t)i * rows + r] - ref), bound) << "row " << r << " input " << i;
          }
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
  EXPECT_EQ(i8.bytes(), (size_t)rows * cols + 4 * rows);
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
      ASSERT_LE(std::fabs(ri[c] - v), 0.5f * scale * (1 + 1e-6f)) << r << "," << c;
    }
  }
  EXPECT_THROW(llm::parse_weight_format("int4"), llm::Error);
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
  } cases[] = {{"tiny_a", 40, 40}, {"tiny_b", 27, 40}};
  for (const Case& k : cases) {
    const llm::LoadedModel m = llm::load_model(wt::fixture(k.name));
    const std::vector<int> prompt = wt::read_json(wt::fixture(std::string(k.name) + "/ref.json"))["prompt"];
    llm::KVCacheGPT2 ref(m.config, std::vector<float>(m.params));
    const std::vector<int> path = greedy(ref, prompt, 40);
    const auto want = forced_logits(ref, prompt, std::vector<int>(path.begin(), path.end() - 1));
    for (WeightFormat f : {WeightFormat::kBf16, WeightFormat::kInt8}) {
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
      EXPECT_LE(worst, f == WeightFormat::kBf16 ? 2.5e-2 : 8e-2);
      const std::vector<int> free_run = greedy(q, prompt, 40);
      int same = 0;
      while (same < 40 && free_run[same] == path[same]) same++;
      std::printf("%s %s: greedy identical to fp32 for %d of 40 tokens\n", k.name, llm::weight_format_name(f), same);
      EXPECT_GE(same, f == WeightFormat::kBf16 ? k.bf16_same : k.int8_same);
      // the no-cache mode of the same format gives the same tokens (prefill path vs decode path)
      llm::KVCacheGPT2 q_nc(m.config, std::vector<float>(m.params), f, false);
      EXPECT_EQ(greedy(q_nc, prompt, 20), std::vector<int>(free_run.begin(), free_run.begin() + 20));
    }
  }
}

#ifdef GPT2_CPU_BIN
TEST(DecodeFormats, CliWeightsFlag) {
  const std::vector<int> prompt = wt::read_json(wt::fixture("tiny_a/ref.json"))["prompt"];
  std::string ids;
  for (int t : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const llm::LoadedModel m = llm::load_model(wt::fixture("tiny_a"));
  for (const char* f : {"bf16", "int8"}) {
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
