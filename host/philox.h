// philox.h — counter-based RNG shared by the CPU reference and the CUDA kernels (header-only, no deps).
//
// Why counter-based: a dropout mask must be reproducible element by element from (seed, stream, index)
// alone, in any order and on any device, so the CPU reference and a GPU kernel draw the SAME mask without
// sharing state. Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) maps
// a 128-bit counter and a 64-bit key to 128 random bits with 10 rounds of multiply/xor.
//
// Our mapping (documented so that other implementations — scripts/gen_reference.py — reproduce it):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (q & 0xffffffff, q >> 32, stream, 0)   with q = index >> 2
//   word    = output[index & 3]                      (so one Philox call serves 4 consecutive elements)
//   uniform = (word >> 8) * 2^-24                    (24 random bits, exactly representable, in [0,1))
// Dropout keeps element `index` iff uniform >= p; kept values are scaled by 1/(1-p) (inverted dropout).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LLM_HD __host__ __device__
#else
#define LLM_HD
#endif

namespace llm {

struct Philox4 { uint32_t v[4]; };

namespace philox_detail {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (Weyl) increments

LLM_HD inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = (uint64_t)a * (uint64_t)b;
  hi = (uint32_t)(p >> 32);
  lo = (uint32_t)p;
}
}  // namespace philox_detail

// The raw generator: 10 rounds, key bumped between rounds.
LLM_HD inline Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  using namespace philox_detail;
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, ctr.v[0], hi0, lo0);
    mulhilo(kM1, ctr.v[2], hi1, lo1);
    Philox4 next = {{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    ctr = next;
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

// 24-bit uniform in [0,1) from one 32-bit word.
LLM_HD inline float uniform_from_u32(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

// The uniform number of element `index` in stream `stream` under key `seed` (mapping above).
LLM_HD inline float dropout_uniform(uint64_t seed, uint32_t stream, uint64_t index) {
  const uint64_t q = index >> 2;
  Philox4 ctr = {{(uint32_t)q, (uint32_t)(q >> 32), stream, 0u}};
  Philox4 r = philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
  return uniform_from_u32(r.v[index & 3]);
}

// The uniforms of the four elements 4q .. 4q+3 from one Philox call (same values as dropout_uniform).
LLM_HD inline void dropout_uniform4(uint64_t seed, uint32_t stream, uint64_t q, float u[4]) {
  Philox4 ctr = {{(uint32_t)q, (uint32_t)(q >> 32), stream, 0u}};
  Philox4 r = philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
  for (int j = 0; j < 4; j++) u[j] = uniform_from_u32(r.v[j]);
}

// One dropout site's parameters. p == 0 means identity (no RNG is drawn at all).
struct DropoutSpec {
  float p = 0.0f;       // drop probability
  uint64_t seed = 0;    // per (step, micro-step) seed, see dropout_step_seed
  uint32_t stream = 0;  // which site, see dropout_stream
};

LLM_HD inline bool dropout_keep(const DropoutSpec& d, uint64_t index) {
  if (d.p <= 0.0f) return true;
  return dropout_uniform(d.seed, d.stream, index) >= d.p;
}

// Multiplier applied to kept elements: 1/(1-p) (0 for p >= 1: everything dropped).
LLM_HD inline float dropout_scale(const DropoutSpec& d) { return d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f; }

// SplitMix64 finaliser: a bijective 64-bit mixer (Steele et al.), used to derive per-step seeds.
LLM_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Seed of one micro-step: every (step, micro_step) gets an independent mask, reproducible on resume.
//   seed = splitmix64(splitmix64(run_seed) ^ splitmix64((step << 16) ^ micro_step))
LLM_HD inline uint64_t dropout_step_seed(uint64_t run_seed, uint64_t step, uint32_t micro_step) {
  return splitmix64(splitmix64(run_seed) ^ splitmix64((step << 16) ^ (uint64_t)micro_step));
}

// Dropout sites. The embedding site uses layer 0.
enum DropoutSite : uint32_t { kDropEmbed = 0, kDropAttn = 1, kDropResidAttn = 2, kDropResidMlp = 3 };

// Stream id of a (layer, site): stream = layer * 4 + site.
LLM_HD inline uint32_t dropout_stream(int layer, DropoutSite site) { return (uint32_t)layer * 4u + (uint32_t)site; }

}  // namespace llm
