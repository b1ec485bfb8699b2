// gpt2_model.h — the fp32 CPU reference GPT-2: parameters, activations, forward, backward.
//
// Why one class: the training program, the tests and the CUDA parity checks all need the same model with
// the same memory layout (host/gpt2_config.h), so parameters and gradients live in one contiguous buffer
// each, addressable per tensor, and activations are kept for the last forward's (B, T).
//
// Typical training step (gradient accumulation over `accum` micro-batches):
//   model.zero_grad();
//   for (int micro = 0; micro < accum; micro++) {
//     float loss = model.forward(inp, tgt, B, T, {true, llm::dropout_step_seed(run_seed, step, micro)});
//     model.backward(1.0f / accum);                 // mean over micro-batches
//   }
//   double norm = clip_grad_norm(model, 1.0f);      // cpu/optimizer.h
//   opt.step(model, schedule(step), step + 1);
// or, with clipping fused into the update (same bits, one pass less over the gradients):
//   double norm = grad_norm(model);
//   opt.step(model, schedule(step), step + 1, clip_scale(norm, 1.0f));
// Exact resume needs only parameters, AdamW m/v, the step and the run seed: dropout masks are a pure function
// of (run seed, step, micro-step, site, element) — see host/philox.h.
//
// The same class is the trunk of fine-tuning (cpu/classifier.h): forward_trunk()/backward_trunk() run the
// embeddings, the blocks and the final LayerNorm alone (a classification head reads lnf()), and set_finetune()
// freezes what a host/finetune_spec.h spec does not train and adds its LoRA adapters to the linears.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "cpu/linear.h"
#include "host/finetune_spec.h"
#include "host/gpt2_config.h"
#include "host/philox.h"

namespace llm {

// LoRA adapters (host/finetune_spec.h): slot s holds A (rank, in[s]) at off[s], then B (out[s], rank), all slots in
// one flat array (finetune_init's); grad has the same layout once a backward ran. scale = alpha / rank.
struct LoraAdapters {
  int rank = 0;
  float scale = 0.0f;
  std::vector<float> w, grad;
  std::vector<size_t> off;
  std::vector<int> in, out;
};

struct TrainFlags {
  bool training = false;      // dropout active (p = config.dropout) only when true
  uint64_t dropout_seed = 0;  // this micro-step's seed, usually dropout_step_seed(run_seed, step, micro_step)
};

class GPT2Model {
 public:
  // Allocates zeroed parameters (gradients are allocated by the first zero_grad()/backward()). Throws llm::Error
  // for an inconsistent config (C % NH != 0, Vp < V, non-positive sizes, dropout outside [0,1)).
  explicit GPT2Model(const GPT2Config& config);
  // Takes num_parameters(config) floats (a checkpoint's) as the parameters; llm::Error for a wrong count.
  GPT2Model(const GPT2Config& config, std::vector<float> params);

  const GPT2Config& config() const { return config_; }
  size_t num_params() const { return params_.size(); }

  // Parameters: one buffer in gpt2_config.h order; param(k) points at tensor k (size param_size(k)).
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* param(ParamTensor k) { return params_.data() + offsets_[k]; }
  const float* param(ParamTensor k) const { return params_.data() + offsets_[k]; }
  size_t param_size(ParamTensor k) const { return sizes_[k]; }
  size_t param_offset(ParamTensor k) const { return offsets_[k]; }

  // Gradients: same layout as params. Accumulated by backward(); cleared by zero_grad().
  // Empty (nullptr) until the first zero_grad() or backward(), so inference-only use costs no gradient memory.
  // zero_grad() only marks them cleared: the next backward() writes the matmul weight gradients (nearly all
  // parameters) without reading them and zeroes the rest, which saves a 0.5 GB memset per 124M step; any
  // accessor below zeroes them first if they are still marked, so callers always see cleared gradients.
  bool has_grads() const { return !grads_.empty(); }
  float* grads() { materialize_zero(); return grads_.data(); }
  const float* grads() const { materialize_zero(); return grads_.data(); }
  float* grad(ParamTensor k) { materialize_zero(); return grads_.data() + offsets_[k]; }
  const float* grad(ParamTensor k) const { materialize_zero(); return grads_.data() + offsets_[k]; }

  // GPT-2 / llm.c initialisation from `seed`: weights (wte, wpe, qkvw, attprojw, fcw, fcprojw, lm_head) ~ N(0, 0.02),
  // residual projections (attprojw, fcprojw) ~ N(0, 0.02/sqrt(2L)), LayerNorm weights 1, all biases 0, padded vocab
  // rows (V..Vp-1) 0. Normals come from std::mt19937_64(seed) + our own Box-Muller (std::normal_distribution is
  // implementation-defined), drawn tensor by tensor in buffer order, row-major, skipping padded rows —
  // identical on every platform and thread count.
  void init_gpt2(uint64_t seed);

  // The book's initialisation (PyTorch defaults): wte, wpe, lm_head ~ N(0, 1); every Linear weight and bias
  // ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (qkv, attproj, fc: fan_in C; fcproj: 4C); LayerNorm 1/0; padded rows 0.
  // Same generator and order as init_gpt2 (uniforms: top 24 bits of one mt19937_64 draw).
  void init_book(uint64_t seed);

  // Runs the model on inputs (B,T) (token ids in [0,V), T <= max_seq_len). When targets (B,T) is given
  // (-100 = ignore) returns the mean cross-entropy over non-ignored targets and prepares backward();
  // otherwise returns -1. logits() and probs() (B,T,Vp; padding columns of probs 0) are always filled.
  // Activations are (re)allocated when B*T changes. Throws llm::Error on bad ids / sizes.
  float forward(const int* inputs, const int* targets, int B, int T, const TrainFlags& flags = {});

  void zero_grad();
  // Accumulates (+=) d(loss_scale · mean loss)/dθ into grads() for the last forward (which needed targets).
  // loss_scale = 1/accum gives the mean over accumulated micro-batches.
  void backward(float loss_scale = 1.0f);

  // ---- the trunk and the fine-tuning hooks ----
  // forward() is forward_trunk() then the LM head; backward() the LM head's backward then backward_trunk().
  // forward_trunk: embeddings, blocks, final LayerNorm, leaving lnf() (B,T,C); same checks as forward().
  void forward_trunk(const int* inputs, int B, int T, const TrainFlags& flags = {});
  const float* lnf() const { return acts_.lnf.data(); }
  // Accumulates the trunk's gradients from dlnf (B,T,C) = dL/dlnf of the last forward_trunk.
  void backward_trunk(const float* dlnf);
  // From now on only the tensors `spec` (normalised, host/finetune_spec.h) trains get gradients — the others get no
  // gradient memory or work — the backward stops below the lowest block that needs a gradient, the LM head's
  // gradient exists only when spec.train_head, and `lora` (rank > 0) adds its adapters to the block linears and
  // the LM head (slot layer·kNumBlockLinears + kind, the head's last). Activations are re-allocated.
  void set_finetune(const FinetuneSpec& spec, LoraAdapters lora);
  bool trainable(ParamTensor k, int layer = 0) const;  // layer: for per-block tensors
  LoraAdapters& lora() { return lora_; }
  const LoraAdapters& lora() const { return lora_; }
  // The adapter of slot s as a Linear's LoRA fields (nothing when there are no adapters).
  void attach_lora(Linear& lin, int slot);

  int batch() const { return B_; }
  int seq_len() const { return T_; }
  const float* logits() const { return acts_.logits.data(); }  // (B,T,Vp) of the last forward
  const float* probs() const { return acts_.probs.data(); }    // (B,T,Vp)
  const float* losses() const { return acts_.losses.data(); }  // (B,T), 0 at ignored targets
  float mean_loss() const { return mean_loss_; }
  int num_valid_targets() const { return num_valid_; }

 private:
  struct Activations {  // per-layer tensors are stacked [L][...]
    std::vector<float> encoded;                    // (B,T,C) embedding sum before dropout
    std::vector<float> residual;                   // (L+1,B,T,C) residual stream x_0..x_L (x_0 = drop(encoded))
    std::vector<float> ln1, ln1_mean, ln1_rstd;    // (L,B,T,C), (L,B,T)
    std::vector<float> qkv;                        // (L,B,T,3C)
    std::vector<float> att;                        // (L,B,NH,T,T) softmax before dropout
    std::vector<float> atty;                       // (L,B,T,C) attention output (heads concatenated)
    std::vector<float> attproj;                    // (L,B,T,C)
    std::vector<float> residual2;                  // (L,B,T,C) x_l + drop(attproj)
    std::vector<float> ln2, ln2_mean, ln2_rstd;    // (L,B,T,C), (L,B,T)
    std::vector<float> fch, fch_gelu;              // (L,B,T,4C)
    std::vector<float> fcproj;                     // (L,B,T,C)
    std::vector<float> lnf, lnf_mean, lnf_rstd;    // (B,T,C), (B,T)
    std::vector<float> logits, probs;              // (B,T,Vp)
    std::vector<float> losses;                     // (B,T)
    std::vector<float> scratch;                    // (B,T,C) dropped branch before the residual add
  };
  struct ActGrads {  // one layer's worth, reused for every layer
    std::vector<float> dlogits;                            // (B,T,Vp)
    std::vector<float> dlnf, dres, dres2, dx;              // (B,T,C)
    std::vector<float> dln, datty, dattproj, dfcproj;      // (B,T,C)
    std::vector<float> dqkv;                               // (B,T,3C)
    std::vector<float> dfch, dfch_gelu;                    // (B,T,4C)
    std::vector<float> dencoded;                           // (B,T,C)
    std::vector<float> frozen_ln;                          // (2C) sink for a frozen LayerNorm's dweight, dbias
  };

  void allocate_activations(int B, int T);
  void allocate_act_grads();
  DropoutSpec drop_spec(int layer, DropoutSite site) const;
  const float* head_weight() const { return config_.tied_head ? param(kWte) : param(kLmHead); }
  void materialize_zero() const;  // performs a pending zero_grad()
  bool any_trainable() const;
  // Gradient memory ready; returns false when the weight-gradient GEMMs are to overwrite (after zero_grad(), only
  // when `head_gemm_first`, pretraining's backward(): see there).
  bool begin_backward(bool head_gemm_first);
  void trunk_backward(const float* dlnf, bool accumulate_dw);
  void residual_add(float* out, const float* x, const float* branch, const DropoutSpec& drop);
  const float* residual_grad(std::vector<float>& dx, std::vector<float>& dbranch, const std::vector<float>& dout,
                             const DropoutSpec& drop);
  int lowest_backprop_block() const;
  float* grad_or_null(ParamTensor k, int layer, size_t per_layer);  // nullptr: frozen or no gradient memory
  float* ln_grad(ParamTensor k, int layer);                        // LayerNorm w/b gradient, or the frozen sink
  Linear block_linear(int layer, int kind);
  Linear head_linear();
  float* lora_h(int layer, int kind);  // (B,T,rank) saved x·Aᵀ of one adapter; nullptr without adapters

  GPT2Config config_;
  std::array<size_t, kNumParamTensors> sizes_{}, offsets_{};
  std::vector<float> params_;
  mutable std::vector<float> grads_;
  mutable bool grads_zero_pending_ = false;  // zero_grad() called, gradients not cleared yet
  Activations acts_;
  ActGrads dacts_;
  std::optional<FinetuneSpec> finetune_;  // set by set_finetune(): the frozen mask, backprop floor, head
  LoraAdapters lora_;
  std::vector<float> lora_h_;            // (L·kNumBlockLinears + 1, B,T, rank)
  std::vector<int> inputs_, targets_;  // copies of the last forward's batch
  bool have_targets_ = false;
  TrainFlags flags_{};
  int B_ = 0, T_ = 0;
  float mean_loss_ = -1.0f;
  int num_valid_ = 0;
};

}  // namespace llm
