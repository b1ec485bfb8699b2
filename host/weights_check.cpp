#include "host/weights_check.h"

#include <cmath>
#include <cstring>

#include "host/error.h"

namespace llm {

namespace {
bool g_allow = false;
}

void set_allow_nonfinite(bool allow) { g_allow = allow; }
bool allow_nonfinite() { return g_allow; }

void add_allow_nonfinite_flag(CLI::App& app) {
  app.add_flag_callback("--allow-nonfinite", [] { set_allow_nonfinite(true); },
                        "load (and write) weights holding NaN/Inf instead of failing (for inspecting damaged files)");
}

const char* param_tensor_name(int k) {
  static const char* const kNames[kNumParamTensors] = {
      "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb", "ln2w",
      "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw", "lnfb",     "lm_head"};
  return k >= 0 && k < kNumParamTensors ? kNames[k] : "?";
}

size_t first_nonfinite(const float* p, size_t n) {
  // exponent bits all ones <=> NaN or Inf; an integer test vectorises and has no FP-mode pitfalls
  size_t bad = n;
#pragma omp parallel for reduction(min : bad) schedule(static)
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, p + i, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && i < bad) bad = i;
  }
  return bad;
}

void check_finite_params(const std::string& source, const GPT2Config& c, const float* params) {
  if (g_allow) return;
  const size_t n = num_parameters(c);
  const size_t i = first_nonfinite(params, n);
  if (i == n) return;
  const auto sizes = param_sizes(c);
  const auto offsets = param_offsets(c);
  int k = 0;
  while (k + 1 < kNumParamTensors && (sizes[k] == 0 || i >= offsets[k] + sizes[k])) k++;
  fail(source, ": tensor ", param_tensor_name(k), " holds a non-finite value (", params[i], ") at element ",
       i - offsets[k], "; the weights are damaged (--allow-nonfinite uses them anyway)");
}

void check_finite_array(const std::string& source, const char* what, const float* p, size_t n) {
  if (g_allow) return;
  const size_t i = first_nonfinite(p, n);
  if (i != n)
    fail(source, ": ", what, " holds a non-finite value (", p[i], ") at element ", i,
         "; the file is damaged (--allow-nonfinite uses it anyway)");
}

}  // namespace llm
