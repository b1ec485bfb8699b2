// sampling.h — choosing the next token from a row of logits: greedy, temperature, top-k, top-p, seeded.
//
// Semantics (the book's generate(), §5.3, plus nucleus sampling):
//   temperature == 0  -> argmax (lowest id among equal maxima); top-k / top-p have no effect, no RNG draw.
//   top_k > 0         -> find the k-th largest logit and drop every logit strictly below it, so ties with the
//                        k-th value SURVIVE (top-k may keep more than k tokens). k >= V keeps everything.
//   temperature > 0   -> probs = softmax(logits / temperature) over the survivors.
//   top_p < 1         -> nucleus: sort survivors by probability (descending, lower id first on ties) and keep the
//                        shortest prefix whose probabilities sum to >= top_p (at least one token), renormalise.
//   then one draw u ~ U[0,1) picks the first id whose cumulative probability (in id order) exceeds u.
// RNG: SplitMix64 stream from `seed`, 53-bit uniforms; the same seed gives the same tokens on every platform.
// Ranges (checked by validate(), llm::Error otherwise): temperature finite and >= 0; top_k >= 0 (0 = off);
// top_p finite in (0, 1] (1 = off).
#pragma once
#include <cstdint>
#include <vector>

namespace llm {

struct SamplingParams {
  float temperature = 1.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 1337;
};

void validate(const SamplingParams& p);  // throws llm::Error with a message naming the bad option

// Index of the largest of logits[0..V) (the lowest index on ties).
int argmax(const float* logits, int V);

// The k-th largest value of logits[0..V) (1 <= k <= V).
float kth_largest(const float* logits, int V, int k);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);  // validates p
  const SamplingParams& params() const { return p_; }
  // The distribution the next draw uses (V entries, 0 for excluded ids). Requires temperature > 0.
  void distribution(const float* logits, int V, std::vector<float>* probs) const;
  // Picks the next token from logits[0..V).
  int sample(const float* logits, int V);
  double uniform();  // next U[0,1) from the stream
 private:
  SamplingParams p_;
  uint64_t state_;
  std::vector<float> probs_;
};

}  // namespace llm
