// attention_dispatch.cuh — the one place where the device models (gpu/gpt2_gpu.cuh, gpu/finetune_gpu.cuh,
// gpu/generate.cuh) call attention: the path chosen by --attention (gpu/attention_path.h) picks the kernels.
//   portable  kern::attention_forward / attention_backward      (kernels/attention.cuh)
//   flash     kern::flash_attention_forward / _backward         (kernels/flash_attention.cuh)
//   cudnn     kern::cudnn_attention_forward / _backward         (kernels/attention_cudnn.cuh)
// All three read q/k/v from the fused qkv (B,T,3C), write out (B,T,C) and lse (B,NH,T) fp32, and overwrite dqkv
// (B,T,3C) in backward. attention_facts() tells the selection what this build and this run can do.
#pragma once
#include "cuda_cpu/compat.cuh"
#include "gpu/attention_path.h"
#include "host/error.h"
#include "host/philox.h"
#include "kernels/attention.cuh"
#include "kernels/attention_cudnn.cuh"
#include "kernels/flash_attention.cuh"
#include "kernels/step_profile.cuh"  // --profile-step: attention time

namespace gpu {

constexpr bool kFlashAttentionBuilt = true;  // every build has it (the CPU layer emulates its tensor-core ops)

// What this build and this run can do: the input of resolve_attention(). dropout: the attention-dropout
// probability of training (0 where no dropout is ever applied: evaluation, fine-tuning, generation).
inline AttentionFacts attention_facts(int C, int NH, bool bf16, float dropout) {
  AttentionFacts f;
  f.bf16 = bf16;
  f.dropout = dropout;
  f.head_size = NH > 0 ? C / NH : 0;
  f.cudnn_built = kern::kCudnnAttentionBuilt;
#ifdef __CUDACC__
  f.real_gpu = true;  // the nvcc build runs only on a GPU (train_gpt2.cu's require_device)
#endif
  f.flash_built = kFlashAttentionBuilt;
  f.flash_supported = kern::flash_attention_supported(C, NH, bf16);
  return f;
}

// out (B,T,C), lse (B,NH,T) <- qkv (B,T,3C) by `path` (resolved: never kAuto).
template <class floatX>
void attention_forward(AttentionPath path, floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH,
                       const llm::DropoutSpec& drop, cudaStream_t stream) {
  kern::ProfileScope profile(kern::ProfilePhase::kAttention, stream);
  switch (path) {
    case AttentionPath::kPortable:
      kern::attention_forward(out, lse, qkv, B, T, C, NH, drop, stream);
      return;
    case AttentionPath::kCudnn:
      kern::cudnn_attention_forward(out, lse, qkv, B, T, C, NH, drop, stream);
      return;
    case AttentionPath::kFlash:
      kern::flash_attention_forward(out, lse, qkv, B, T, C, NH, drop, stream);
      return;
    default:
      llm::fail("attention: path '", attention_path_name(path), "' was not resolved");
  }
}

// dqkv (B,T,3C) (overwritten) <- dout (B,T,C) and the forward's qkv, out, lse. scratch: B·NH·T floats.
template <class floatX>
void attention_backward(AttentionPath path, floatX* dqkv, float* scratch, const floatX* dout, const floatX* qkv,
                        const floatX* out, const float* lse, int B, int T, int C, int NH, const llm::DropoutSpec& drop,
                        cudaStream_t stream) {
  kern::ProfileScope profile(kern::ProfilePhase::kAttention, stream);
  switch (path) {
    case AttentionPath::kPortable:
      kern::attention_backward(dqkv, scratch, dout, qkv, lse, B, T, C, NH, drop, stream);
      return;
    case AttentionPath::kCudnn:
      kern::cudnn_attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, drop, stream);
      return;
    case AttentionPath::kFlash:
      kern::flash_attention_backward(dqkv, scratch, dout, qkv, out, lse, B, T, C, NH, drop, stream);
      return;
    default:
      llm::fail("attention: path '", attention_path_name(path), "' was not resolved");
  }
}

}  // namespace gpu
