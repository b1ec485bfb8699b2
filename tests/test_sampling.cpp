// Sampling semantics: the book's top-k (ties kept) + temperature example, nucleus cutoff, greedy, seeding,
// empirical frequencies, and range validation.
// Bounds: a probability p ≤ 1 is a float softmax over ≤ 9 logits (expf ≤ 1 ulp, a ≤ 9-term sum, a divide: ≤ 12·u
// relative, u = 2^-24) of float-rounded inputs (log(0.125f) etc. off by ≤ 1 ulp, moving p by ≤ 2.4e-7): < 1e-6
// absolute. The book's figures are printed to 4 decimals: ±5e-5, plus that 1e-6. Frequencies: 4 binomial sd (the
// sampler's SplitMix64 stream is seeded and integer, so the counts change between CPUs only for a draw within an
// ulp of a cumulative-probability boundary: no flakes).
#include <gtest/gtest.h>

#include <cmath>

#include "host/error.h"
#include "host/sampling.h"

namespace {
// The book's teaching logits (ch05): closer, every, effort, forward, inches, moves, pizza, toward, you.
const std::vector<float> kBook = {4.51f, 0.89f, -1.90f, 6.75f, 1.63f, -1.62f, -1.89f, 6.28f, 1.79f};

llm::SamplingParams params(float t, int k, float p, uint64_t seed = 7) {
  llm::SamplingParams s;
  s.temperature = t;
  s.top_k = k;
  s.top_p = p;
  s.seed = seed;
  return s;
}

std::string error_of(const llm::SamplingParams& p) {
  try {
    llm::validate(p);
  } catch (const llm::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Sampling, GreedyIsArgmax) {
  llm::Sampler s(params(0.0f, 3, 0.5f));
  EXPECT_EQ(s.sample(kBook.data(), 9), 3);  // "forward"
  std::vector<float> tie = {1, 5, 5, 2};
  EXPECT_EQ(llm::argmax(tie.data(), 4), 1);  // first maximum, like torch.argmax
}

TEST(Sampling, BookTopKExample) {
  // top-3 = 6.75, 6.28, 4.51 at 3, 7, 0; softmax of those = 0.0615, 0.5775, 0.3610 (book).
  EXPECT_FLOAT_EQ(llm::kth_largest(kBook.data(), 9, 3), 4.51f);
  llm::Sampler s(params(1.0f, 3, 1.0f));
  std::vector<float> p;
  s.distribution(kBook.data(), 9, &p);
  // exact 0.061487, 0.577547, 0.360966; bound 5e-5 (printed decimals) + 1e-6 (fp32), was 5e-5
  EXPECT_NEAR(p[0], 0.0615, 5.1e-5);
  EXPECT_NEAR(p[3], 0.5775, 5.1e-5);
  EXPECT_NEAR(p[7], 0.3610, 5.1e-5);
  for (int i : {1, 2, 4, 5, 6, 8}) EXPECT_EQ(p[i], 0.0f);
}

TEST(Sampling, TopKKeepsTiesWithKthValue) {
  std::vector<float> l = {1.0f, 3.0f, 2.0f, 2.0f, 0.5f, 2.0f};
  llm::Sampler s(params(1.0f, 2, 1.0f));
  std::vector<float> p;
  s.distribution(l.data(), 6, &p);
  // k-th (2nd) largest is 2.0, held by ids 2, 3, 5: all survive -> 4 tokens, probs ∝ e^3, e^2, e^2, e^2.
  const double z = std::exp(3.0) + 3 * std::exp(2.0);
  EXPECT_NEAR(p[1], std::exp(3.0) / z, 1e-6);
  for (int i : {2, 3, 5}) EXPECT_NEAR(p[i], std::exp(2.0) / z, 1e-6);
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_EQ(p[4], 0.0f);
  // k >= V is no filter.
  llm::Sampler all(params(1.0f, 100, 1.0f));
  all.distribution(l.data(), 6, &p);
  for (float q : p) EXPECT_GT(q, 0.0f);
}

TEST(Sampling, TemperatureScales) {
  std::vector<float> l = {0.0f, 1.0f};
  std::vector<float> p;
  llm::Sampler(params(0.5f, 0, 1.0f)).distribution(l.data(), 2, &p);
  EXPECT_NEAR(p[1], 1.0 / (1.0 + std::exp(-2.0)), 1e-6);  // logits / 0.5
  llm::Sampler(params(4.0f, 0, 1.0f)).distribution(l.data(), 2, &p);
  EXPECT_NEAR(p[1], 1.0 / (1.0 + std::exp(-0.25)), 1e-6);
}

TEST(Sampling, TopPCutoff) {
  // probs 0.5, 0.25, 0.125, 0.125 (logits = log probs).
  std::vector<float> l = {std::log(0.125f), std::log(0.5f), std::log(0.125f), std::log(0.25f)};
  std::vector<float> p;
  llm::Sampler(params(1.0f, 0, 0.45f)).distribution(l.data(), 4, &p);  // 0.5 alone reaches 0.45
  EXPECT_NEAR(p[1], 1.0, 1e-6);
  EXPECT_EQ(p[0] + p[2] + p[3], 0.0f);
  llm::Sampler(params(1.0f, 0, 0.6f)).distribution(l.data(), 4, &p);  // needs 0.5 + 0.25
  EXPECT_NEAR(p[1], 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(p[3], 1.0 / 3.0, 1e-6);
  EXPECT_EQ(p[0] + p[2], 0.0f);
  llm::Sampler(params(1.0f, 0, 0.8f)).distribution(l.data(), 4, &p);  // 0.875 after the tie winner (lower id 0)
  EXPECT_NEAR(p[0], 0.125 / 0.875, 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  // top-k first, then top-p over the survivors.
  llm::Sampler(params(1.0f, 2, 0.9f)).distribution(l.data(), 4, &p);
  EXPECT_NEAR(p[1], 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(p[3], 1.0 / 3.0, 1e-6);
}

TEST(Sampling, SeededAndFrequenciesMatchProbabilities) {
  llm::Sampler a(params(1.0f, 3, 1.0f, 42)), b(params(1.0f, 3, 1.0f, 42)), c(params(1.0f, 3, 1.0f, 43));
  std::vector<int> ra, rb, rc;
  for (int i = 0; i < 50; i++) {
    ra.push_back(a.sample(kBook.data(), 9));
    rb.push_back(b.sample(kBook.data(), 9));
    rc.push_back(c.sample(kBook.data(), 9));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  // 40000 draws: frequencies within 4 standard deviations of the book's top-3 probabilities.
  llm::Sampler s(params(1.0f, 3, 1.0f, 1));
  std::vector<int> count(9, 0);
  const int n = 40000;
  for (int i = 0; i < n; i++) count[s.sample(kBook.data(), 9)]++;
  for (auto [id, prob] : std::vector<std::pair<int, double>>{{0, 0.0615}, {3, 0.5775}, {7, 0.3610}})
    EXPECT_NEAR(count[id] / (double)n, prob, 4 * std::sqrt(prob * (1 - prob) / n)) << id;
  EXPECT_EQ(count[0] + count[3] + count[7], n);
}

TEST(Sampling, ValidationMessages) {
  EXPECT_NE(error_of(params(-0.1f, 0, 1.0f)).find("--temperature"), std::string::npos);
  EXPECT_NE(error_of(params(NAN, 0, 1.0f)).find("--temperature"), std::string::npos);
  EXPECT_NE(error_of(params(INFINITY, 0, 1.0f)).find("--temperature"), std::string::npos);
  EXPECT_NE(error_of(params(1.0f, -1, 1.0f)).find("--top-k -1 is invalid"), std::string::npos);
  EXPECT_NE(error_of(params(1.0f, 0, 0.0f)).find("--top-p"), std::string::npos);
  EXPECT_NE(error_of(params(1.0f, 0, 1.5f)).find("--top-p"), std::string::npos);
  EXPECT_NE(error_of(params(1.0f, 0, NAN)).find("--top-p"), std::string::npos);
  EXPECT_EQ(error_of(params(0.0f, 0, 1.0f)), "");
  EXPECT_THROW(llm::Sampler(params(1.0f, -5, 1.0f)), llm::Error);
}
