// attention_path.h — which attention implementation the device models run: `--attention auto|flash|cudnn|portable`.
//
// Why a pure host header: the rule that turns a request into a path (and refuses the impossible ones) must not
// depend on what the build happens to contain, so it takes the build's and the run's facts as plain values
// (AttentionFacts) and is unit-tested over all of them (tests/test_attention_path.cpp) on any machine.
//   portable  kernels/attention.cuh: fp32 FFMA, any precision, head size 8..128, attention dropout with the
//             reference's Philox mask. Always runs.
//   flash     kernels/flash_attention.cuh: tensor cores (mma.sync), bf16 only, head size 64 or 128 (the kernel's
//             own flash_attention_supported()), the same dropout mask as portable.
//   cudnn     kernels/attention_cudnn.cuh: cuDNN SDPA through cudnn_frontend, bf16 only, head size a multiple of 8
//             up to 128, NO attention dropout (cuDNN draws its own random mask, which would break the CPU-vs-GPU
//             parity that the trainer keeps), and only in the nvcc build made with cuDNN, on a GPU.
//   auto      cudnn when it can run (built, on a GPU, bf16, dropout 0, head size ok), else flash when it can run,
//             else portable.
// Asking for a path that cannot run is an error (llm::Error, exit 2) naming the reason — never a silent switch.
#pragma once
#include <string>

#include "host/error.h"

namespace gpu {

enum class AttentionPath { kAuto, kPortable, kFlash, kCudnn };

inline const char* attention_path_name(AttentionPath p) {
  switch (p) {
    case AttentionPath::kAuto: return "auto";
    case AttentionPath::kPortable: return "portable";
    case AttentionPath::kFlash: return "flash";
    default: return "cudnn";
  }
}

// The value of --attention.
inline AttentionPath parse_attention_path(const std::string& s) {
  if (s == "auto") return AttentionPath::kAuto;
  if (s == "portable") return AttentionPath::kPortable;
  if (s == "flash") return AttentionPath::kFlash;
  if (s == "cudnn") return AttentionPath::kCudnn;
  llm::fail("--attention must be auto, flash, cudnn or portable (got '", s, "')");
}

// What decides the path: the run (precision, attention dropout, head size) and the build / device.
struct AttentionFacts {
  bool bf16 = true;
  float dropout = 0.0f;          // attention-dropout probability while training (0: none, or no training)
  int head_size = 64;            // C / NH
  bool cudnn_built = false;      // this binary contains the cuDNN SDPA path (nvcc build with cuDNN + cudnn_frontend)
  bool real_gpu = false;         // running on a GPU (false: the CUDA-on-CPU layer)
  bool flash_built = false;      // this binary contains kernels/flash_attention.cuh
  bool flash_supported = false;  // kern::flash_attention_supported(C, NH, bf16) (false when not built)
};

// Head sizes cuDNN's SDPA takes for bf16 (multiples of 8, at most 128 on sm_80/sm_90).
inline bool cudnn_head_size_ok(int hs) { return hs > 0 && hs % 8 == 0 && hs <= 128; }

// Why `p` cannot run under `f`, or "" when it can.
inline std::string attention_unavailable(AttentionPath p, const AttentionFacts& f) {
  const std::string hs = std::to_string(f.head_size);
  switch (p) {
    case AttentionPath::kCudnn:
      if (!f.real_gpu)
        return "this is the CUDA-on-CPU build (train_gpt2cu_cpu): cuDNN runs only in the nvcc build on a GPU";
      if (!f.cudnn_built)
        return "this train_gpt2cu was built without cuDNN (cuDNN or the cudnn_frontend headers were not found when "
               "it was configured: run scripts/setup.sh and reconfigure)";
      if (!f.bf16) return "cuDNN attention needs --precision bf16";
      if (f.dropout > 0.0f)
        return "cuDNN attention cannot apply attention dropout with the reference's Philox mask (dropout > 0): "
               "use --attention flash or portable, or --dropout 0";
      if (!cudnn_head_size_ok(f.head_size))
        return "cuDNN attention does not support head size " + hs + " (multiples of 8 up to 128)";
      return "";
    case AttentionPath::kFlash:
      if (!f.flash_built) return "this build has no flash attention kernel (kernels/flash_attention.cuh)";
      if (!f.bf16) return "flash attention needs --precision bf16";
      if (!f.flash_supported) return "flash attention does not support head size " + hs + " (64 or 128)";
      return "";
    default:
      return "";  // portable always runs (its own shape check rejects head sizes it has no kernel for)
  }
}

// The path to run: `requested` itself if it can run (else llm::Error naming why), or auto's choice.
inline AttentionPath resolve_attention(AttentionPath requested, const AttentionFacts& f) {
  if (requested == AttentionPath::kAuto) {
    if (attention_unavailable(AttentionPath::kCudnn, f).empty()) return AttentionPath::kCudnn;
    if (attention_unavailable(AttentionPath::kFlash, f).empty()) return AttentionPath::kFlash;
    return AttentionPath::kPortable;
  }
  const std::string why = attention_unavailable(requested, f);
  if (!why.empty()) llm::fail("--attention ", attention_path_name(requested), ": ", why);
  return requested;
}

// "flash" or "flash (auto)": the line the programs print at startup.
inline std::string attention_choice(AttentionPath chosen, AttentionPath requested) {
  return std::string(attention_path_name(chosen)) + (requested == AttentionPath::kAuto ? " (auto)" : "");
}

}  // namespace gpu
