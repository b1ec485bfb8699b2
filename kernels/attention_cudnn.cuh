// attention_cudnn.cuh — causal attention through cuDNN's fused SDPA (forward and backward), bf16.
//
// Why: cuDNN's flash-attention engines are the fastest attention available on sm_80/sm_90 and the yardstick for
// our own kernels (kernels/flash_attention.cuh); `train_gpt2cu --attention cudnn|auto` runs them.
// How: cudnn_frontend's graph API (header-only; the nvidia-cudnn-frontend wheel's include/ dir, installed by
// scripts/setup.sh and found by cmake/cudnn.cmake). One SDPA graph per direction and shape (B, NH, T, HS), built on
// first use (the slow part: heuristics + plan compilation) and cached for the life of the process.
// Layout, with no copies: q, k, v are strided views into the model's fused qkv (B, T, 3C) rows,
//   dims {B, NH, T, HS}, strides {T·3C, HS, 3C, 1}, k at +C, v at +2C elements;
// out / dout (B, T, C) are dims {B, NH, T, HS} with strides {T·C, HS, C, 1}; the softmax statistics (B, NH, T)
// fp32 are cuDNN's "Stats" = rowmax + log Σ exp of the scaled scores, i.e. the same logsumexp that the portable
// and flash kernels store; dqkv (B, T, 3C) is written (overwritten) through the q/k/v strides.
// The backward asks for cuDNN's deterministic algorithm (no atomics on dq), so that repeated runs are meant to be
// bit-identical like the portable and flash paths (not yet checked on a GPU).
// No attention dropout: cuDNN would draw its own mask (not the reference's Philox mask), so the trainer refuses
// the combination (gpu/attention_path.h) and these functions refuse p > 0 as well.
// Where it exists: the implementation is kernels/attention_cudnn.cu, one translation unit compiled by nvcc and
// linked into train_gpt2cu when cmake/cudnn.cmake found cuDNN and cudnn_frontend; the users are then compiled with
// -DLLM_CUDNN (only a define: the heavy frontend headers stay out of train_gpt2.cu, as in llm.c). Elsewhere — the
// CUDA-on-CPU layer, an nvcc build without cuDNN — kCudnnAttentionBuilt is false and the entry points fail with
// llm::Error (the trainer never selects them there: gpu/attention_path.h).
#pragma once
#include <type_traits>

#include "cuda_cpu/compat.cuh"
#include "host/error.h"
#include "host/philox.h"

#if defined(__CUDACC__) && defined(LLM_CUDNN)
#define LLM_CUDNN_ATTENTION 1
#endif

namespace kern {

#ifdef LLM_CUDNN_ATTENTION
constexpr bool kCudnnAttentionBuilt = true;
#else
constexpr bool kCudnnAttentionBuilt = false;
#endif

// The shapes the cuDNN path takes: bf16, head size a multiple of 8 up to 128.
inline bool cudnn_attention_supported(int C, int NH, bool is_bf16) {
  if (!is_bf16 || C <= 0 || NH <= 0 || C % NH != 0) return false;
  const int hs = C / NH;
  return hs % 8 == 0 && hs <= 128;
}

#ifdef LLM_CUDNN_ATTENTION
// kernels/attention_cudnn.cu. Shape errors and graphs cuDNN cannot build: llm::Error; failed executions abort.
void cudnn_attention_forward_bf16(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int B, int T, int C,
                                  int NH, cudaStream_t stream);
void cudnn_attention_backward_bf16(__nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                                   const __nv_bfloat16* out, const float* lse, int B, int T, int C, int NH,
                                   cudaStream_t stream);
#endif

// out (B,T,C), lse (B,NH,T) fp32 <- qkv (B,T,3C); causal, scale 1/sqrt(HS). bf16 only, no dropout.
template <typename floatX>
void cudnn_attention_forward(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH,
                             const llm::DropoutSpec& drop, cudaStream_t stream) {
  if (drop.p > 0.0f) llm::fail("cuDNN attention: attention dropout is not supported (use flash or portable)");
#ifdef LLM_CUDNN_ATTENTION
  if constexpr (std::is_same<floatX, __nv_bfloat16>::value) {
    cudnn_attention_forward_bf16(out, lse, qkv, B, T, C, NH, stream);
    return;
  }
  llm::fail("cuDNN attention needs bf16 (--precision bf16)");
#else
  (void)out, (void)lse, (void)qkv, (void)B, (void)T, (void)C, (void)NH, (void)stream;
  llm::fail("cuDNN attention is not part of this build");
#endif
}

// dqkv (B,T,3C) (overwritten) <- dout (B,T,C), the forward's qkv, out and lse. bf16 only, no dropout.
template <typename floatX>
void cudnn_attention_backward(floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* out, const float* lse,
                              int B, int T, int C, int NH, const llm::DropoutSpec& drop, cudaStream_t stream) {
  if (drop.p > 0.0f) llm::fail("cuDNN attention: attention dropout is not supported (use flash or portable)");
#ifdef LLM_CUDNN_ATTENTION
  if constexpr (std::is_same<floatX, __nv_bfloat16>::value) {
    cudnn_attention_backward_bf16(dqkv, dout, qkv, out, lse, B, T, C, NH, stream);
    return;
  }
  llm::fail("cuDNN attention needs bf16 (--precision bf16)");
#else
  (void)dqkv, (void)dout, (void)qkv, (void)out, (void)lse, (void)B, (void)T, (void)C, (void)NH, (void)stream;
  llm::fail("cuDNN attention is not part of this build");
#endif
}

}  // namespace kern
