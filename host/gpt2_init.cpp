// gpt2_init.cpp — llm.c's and the book's GPT-2 initialisations (see gpt2_init.h).
#include "host/gpt2_init.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace llm {

namespace {

// Standard normals from mt19937_64 by Box-Muller on 53-bit uniforms.
class BoxMuller {
 public:
  explicit BoxMuller(uint64_t seed) : rng_(seed) {}
  double uniform() { return (double)(rng_() >> 40) * 0x1.0p-24; }  // [0, 1)
  double next() {
    if (have_spare_) { have_spare_ = false; return spare_; }
    const double u1 = ((rng_() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]: log(u1) is finite
    const double u2 = (rng_() >> 11) * 0x1.0p-53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
    spare_ = r * std::sin(th);
    have_spare_ = true;
    return r * std::cos(th);
  }
 private:
  std::mt19937_64 rng_;
  double spare_ = 0.0;
  bool have_spare_ = false;
};

}  // namespace

void init_gpt2_params(const GPT2Config& c, uint64_t seed, float* params) {
  const int L = c.num_layers, C = c.channels, V = c.vocab_size;
  const auto sizes = param_sizes(c);
  const auto offsets = param_offsets(c);
  BoxMuller rng(seed);
  const float std_w = 0.02f, std_proj = 0.02f / std::sqrt(2.0f * L);
  std::fill(params, params + num_parameters(c), 0.0f);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    float* p = params + offsets[k];
    size_t n = sizes[k];
    switch (t) {
      case kWte: case kLmHead: n = n ? (size_t)V * C : 0; [[fallthrough]];  // padded rows stay zero (lm_head may be absent)
      case kWpe: case kQkvw: case kFcw:
        for (size_t i = 0; i < n; i++) p[i] = (float)(rng.next() * std_w);
        break;
      case kAttprojw: case kFcprojw:
        for (size_t i = 0; i < n; i++) p[i] = (float)(rng.next() * std_proj);
        break;
      case kLn1w: case kLn2w: case kLnfw:
        std::fill(p, p + n, 1.0f);
        break;
      default:  // biases
        break;
    }
  }
}

void init_book_params(const GPT2Config& c, uint64_t seed, float* params) {
  const int C = c.channels, V = c.vocab_size;
  const auto sizes = param_sizes(c);
  const auto offsets = param_offsets(c);
  BoxMuller rng(seed);
  std::fill(params, params + num_parameters(c), 0.0f);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    float* p = params + offsets[k];
    size_t n = sizes[k];
    const double fan_in = (t == kFcprojw || t == kFcprojb) ? 4.0 * C : (double)C;
    const double bound = 1.0 / std::sqrt(fan_in);
    switch (t) {
      case kWte: case kLmHead: n = n ? (size_t)V * C : 0; [[fallthrough]];  // padded rows stay zero
      case kWpe:
        for (size_t i = 0; i < n; i++) p[i] = (float)rng.next();
        break;
      case kLn1w: case kLn2w: case kLnfw:
        std::fill(p, p + n, 1.0f);
        break;
      case kLn1b: case kLn2b: case kLnfb:
        break;
      default:  // Linear weights and biases
        for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * rng.uniform() - 1.0) * bound);
        break;
    }
  }
}

}  // namespace llm
