// finetune_spec.h — what a GPT-2 fine-tune trains and with which new tensors, shared by every backend
// (the book's chapters 6 and 7, appendix E), and the classifier checkpoint format.
//
// Why in host/: the spec rules (which tensors train, the normalised first trainable block), the initial head and
// LoRA adapter values and the classifier file are device-independent; the CPU model (cpu/classifier.h) and the
// GPU model (gpu/finetune_gpu.cuh) both start from exactly these, so their runs agree number for number.
//
// Modes:
//   num_classes > 0  classification: logits(B,N) = lnf[:, T-1, :] · Wᵀ + b, W (N,C) and b (N) a new head
//                    (PyTorch Linear default init); loss = mean cross-entropy over the batch.
//   num_classes == 0 language model: logits(B,T,Vp) = lnf · headᵀ (wte when tied), cross-entropy with -100
//                    ignored, mean over non-ignored targets (the book's instruction loss).
// LoRA (rank r > 0, alpha): every linear y = x·Wᵀ + b gains (alpha/r)·(x·Aᵀ)·Bᵀ with A (r,in) and B (out,r)
//   (the book's A (in,r), B (r,out), transposed to our (out,in) convention). A ~ U(-1/sqrt(r), 1/sqrt(r)) —
//   torch's kaiming_uniform_(a=sqrt(5)) on the book's (in, r) tensor, whose fan_in is r — and B = 0.
//   With LoRA every base tensor (and the head) is frozen; only the adapters train.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "host/gpt2_config.h"

namespace llm {

struct FinetuneSpec {
  int num_classes = 0;          // > 0: classification head; 0: LM head
  int train_from_layer = -1;    // blocks [train_from_layer, L) are trainable; -1 = the last block only
  bool train_embeddings = false;  // wte, wpe (the "all" option)
  bool train_final_ln = true;
  bool train_head = true;       // the classification head / the LM head (lm_head, or wte when tied)
  int lora_rank = 0;            // > 0: LoRA adapters; the base weights and head are all frozen
  float lora_alpha = 0.0f;
  uint64_t seed = 123;          // head + adapter init
};

// The linear layers LoRA wraps, per block, then the head.
enum LinearKind : int { kLinQkv, kLinAttproj, kLinFc, kLinFcproj, kNumBlockLinears };

// The spec checked and normalised (train_from_layer -1 -> L-1). Throws llm::Error for a bad spec (see below).
FinetuneSpec finetune_check_spec(const GPT2Config& c, FinetuneSpec spec);
// Whether base tensor k (of block `layer` for per-block tensors) trains under a (normalised) spec.
bool finetune_tensor_trainable(const GPT2Config& c, const FinetuneSpec& spec, ParamTensor k, int layer = 0);

// The new tensors of a fine-tune spec with their initial values: the classification head (N,C) + (N) and the LoRA
// adapters, slot s = layer·kNumBlockLinears + kind (the head last) holding A (r,in) at lora_off[s] then B (out,r).
// FinetuneGPT2 starts from exactly these numbers; the GPU backend uses them to start from the same ones.
struct FinetuneInit {
  std::vector<float> head_w, head_b, lora;
  std::vector<size_t> lora_off;
  std::vector<int> lora_in, lora_out;
};
FinetuneInit finetune_init(const GPT2Config& c, const FinetuneSpec& normalised_spec);

// Folds the LoRA adapters into the weights: W += (alpha/r)·B·A for every block linear of params (num_parameters(c)
// floats, the llm.c layout) and for the head (head_w (N,C) when classifying, else the LM head). lora: the adapters
// in FinetuneInit's slot layout for (c, spec). A tied LM head cannot keep sharing wte: params gains an lm_head
// tensor (a copy of wte, then merged) and the returned config is untied. Returns the merged params' config (c when
// spec.lora_rank == 0: nothing to merge). Used by both backends' export, so their merged files agree.
GPT2Config finetune_merge_lora(const GPT2Config& c, const FinetuneSpec& spec, const float* lora,
                               std::vector<float>* params, std::vector<float>* head_w);

// The fine-tuning models' checks of one batch, shared by both backends so that both programs word a bad input the
// same: labels (B) in [0, N) when classifying, else LM targets (B,T) in [0, V) or -100 (either may be nullptr),
// then the batch shape (B, T > 0, T within the context) and the input tokens (B,T) in [0, V). Throws llm::Error.
void finetune_check_batch(const GPT2Config& c, const FinetuneSpec& spec, const int* inputs,
                          const int* labels_or_targets, int B, int T);

// Classifier checkpoint ("LLMCLSF1"): the fine-tuned GPT-2 (adapters merged) + head + label names + the padding
// length used in training. Written atomically; every field validated on load (llm::Error naming the file).
struct ClassifierFile {
  GPT2Config config;
  std::vector<float> params;            // num_parameters(config)
  std::vector<float> head_w, head_b;    // (N,C), (N)
  std::vector<std::string> labels;      // N names
  int max_length = 0;                   // sequences are truncated/padded to this (0 = no padding)
};
void save_classifier(const std::string& path, const ClassifierFile& f);
ClassifierFile load_classifier(const std::string& path);

}  // namespace llm
