#include "host/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "host/error.h"

namespace llm {

void validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f)
    fail("--temperature ", p.temperature, " is invalid: must be a finite number >= 0 (0 = greedy)");
  if (p.top_k < 0) fail("--top-k ", p.top_k, " is invalid: must be >= 0 (0 = no top-k filter)");
  if (!std::isfinite(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f)
    fail("--top-p ", p.top_p, " is invalid: must be in (0, 1] (1 = no nucleus filter)");
}

int argmax(const float* logits, int V) {
  int best = 0;
  for (int i = 1; i < V; i++)
    if (logits[i] > logits[best]) best = i;  // strict: the first maximum wins
  return best;
}

float kth_largest(const float* logits, int V, int k) {
  if (k < 1 || k > V) fail("kth_largest: k = ", k, " outside [1, ", V, "]");
  std::vector<float> v(logits, logits + V);
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end(), std::greater<float>());
  return v[k - 1];
}

Sampler::Sampler(const SamplingParams& p) : p_(p), state_(p.seed) { validate(p); }

double Sampler::uniform() {
  // SplitMix64 (Steele, Lea, Flood 2014): Weyl increment + finaliser.
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);  // 53 bits -> [0,1)
}

void Sampler::distribution(const float* logits, int V, std::vector<float>* probs) const {
  if (!(p_.temperature > 0.0f)) fail("Sampler::distribution needs temperature > 0");
  // 1. top-k: everything strictly below the k-th largest logit is out (ties with it stay in).
  const float cut = (p_.top_k > 0 && p_.top_k < V) ? kth_largest(logits, V, p_.top_k) : -INFINITY;
  // 2. softmax(logits / T) over the survivors, max-subtracted.
  float mx = -INFINITY;
  for (int i = 0; i < V; i++)
    if (logits[i] >= cut) mx = std::max(mx, logits[i]);
  probs->assign(V, 0.0f);
  double sum = 0.0;
  for (int i = 0; i < V; i++)
    if (logits[i] >= cut) {
      (*probs)[i] = std::exp((logits[i] - mx) / p_.temperature);
      sum += (*probs)[i];
    }
  for (float& q : *probs) q = (float)(q / sum);
  // 3. nucleus: the shortest most-probable prefix reaching top_p.
  if (p_.top_p < 1.0f) {
    std::vector<int> order;
    for (int i = 0; i < V; i++)
      if ((*probs)[i] > 0.0f) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return (*probs)[a] > (*probs)[b]; });
    double cum = 0.0;
    size_t keep = 0;
    while (keep < order.size()) {
      cum += (*probs)[order[keep++]];
      if (cum >= p_.top_p) break;
    }
    for (size_t j = keep; j < order.size(); j++) (*probs)[order[j]] = 0.0f;
    for (float& q : *probs) q = (float)(q / cum);
  }
}

int Sampler::sample(const float* logits, int V) {
  if (p_.temperature == 0.0f) return argmax(logits, V);
  distribution(logits, V, &probs_);
  const double u = uniform();
  double cum = 0.0;
  int last = 0;
  for (int i = 0; i < V; i++) {
    if (probs_[i] == 0.0f) continue;
    cum += probs_[i];
    last = i;
    if (u < cum) return i;
  }
  return last;  // u landed in the rounding slack above the final cumulative sum
}

}  // namespace llm
