// weights_check.h — non-finite numbers never enter or leave a model silently.
//
// Why: one NaN in a weight makes every forward NaN; before this check such a file loaded without notice,
// `eval` printed "val_loss nan" with exit 0 and a training run marked a NaN checkpoint complete. Every loader
// (llm.c .bin, safetensors, training state) and every checkpoint writer scans its floats; a non-finite value is
// an llm::Error naming the file and the tensor, unless --allow-nonfinite (set_allow_nonfinite) was given.
#pragma once
#include <cstddef>
#include <string>

#include <CLI/CLI.hpp>

#include "host/gpt2_config.h"

namespace llm {

// Process-wide: --allow-nonfinite turns the checks below off (for inspecting a damaged file).
void set_allow_nonfinite(bool allow);
bool allow_nonfinite();
// Adds the --allow-nonfinite flag to a command line.
void add_allow_nonfinite_flag(CLI::App& app);

// The name of parameter tensor k ("wte", "qkvw", ...), gpt2_config.h order.
const char* param_tensor_name(int k);

// Fails "<source>: tensor <name> holds a non-finite value (<v>) at element <i> ..." on the first NaN/Inf of
// params (num_parameters(c) floats, gpt2_config.h layout). No-op when allow_nonfinite().
void check_finite_params(const std::string& source, const GPT2Config& c, const float* params);
// The same for one named array (e.g. "AdamW m").
void check_finite_array(const std::string& source, const char* what, const float* p, size_t n);
// Index of the first non-finite element of p, or n when every element is finite.
size_t first_nonfinite(const float* p, size_t n);

}  // namespace llm
