// gpt2_init.h — the random initialisations of a GPT-2 parameter buffer (gpt2_config.h layout), shared by every
// backend: the CPU reference (GPT2Model::init_gpt2 / init_book) and the GPU trainer start from the same bits.
//
// Why in host/: a fresh run's weights are part of the run (seeded from --seed), not of a device; written once,
// the trainers agree bit for bit without the GPU code reaching into the CPU reference.
// The normals come from mt19937_64 through a written-out Box-Muller (std::normal_distribution's algorithm is
// implementation-defined), so the init is identical on every platform.
#pragma once
#include <cstdint>

#include "host/gpt2_config.h"

namespace llm {

// llm.c / GPT-2: every weight matrix and wte/wpe ~ N(0, 0.02²), the residual projections (attprojw, fcprojw)
// ~ N(0, (0.02/√(2L))²), LayerNorm weights 1, biases 0; wte/lm_head rows beyond V (padding) stay 0.
// params: num_parameters(c) floats, all overwritten.
void init_gpt2_params(const GPT2Config& c, uint64_t seed, float* params);

// The book (PyTorch defaults): nn.Embedding ~ N(0,1); nn.Linear weights and biases ~ U(−1/√fan_in, 1/√fan_in)
// (fan_in C, or 4C for fcproj); LayerNorm 1 and 0. Same generator and order as init_gpt2_params (uniforms: top
// 24 bits of one mt19937_64 draw).
void init_book_params(const GPT2Config& c, uint64_t seed, float* params);

}  // namespace llm
