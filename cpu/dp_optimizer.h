// dp_optimizer.h — the optimizer step of a data-parallel CPU run: gradient sync over the ranks, global-norm
// clipping (llm.c style) and AdamW, with the AdamW state whole on every rank (ZeRO-0) or sharded (ZeRO-1).
//
// Why its own class: the model computes this rank's gradient; how the ranks combine gradients and who updates
// which parameters is a separate decision, and both stages must give the same numbers (tested):
//   ZeRO-0: grads = all_reduce_sum(grads padded like ZeRO-1's) / world; norm; clip; AdamW over all parameters on
//           every rank (the padded sum lets MpiComm add each element exactly as ZeRO-1's reduce-scatter does).
//   ZeRO-1: copy grads into a buffer padded to a multiple of world (host/comm.h: even shards), reduce_scatter_sum,
//           / world on the own shard; norm² of the own shard summed over ranks; AdamW (clip folded into the
//           gradient scale, same bits) on the own shard with this rank's m/v shard; all_gather the parameters.
// With one rank and ZeRO-0 the step is exactly AdamW::step after clip_grad_norm (bit-identical to before).
// On the CPU the padded buffer costs n floats, so ZeRO-1 saves memory only from 3 ranks on; the point here is
// the reference semantics of the GPU trainer's ZeRO-1.
#pragma once
#include <memory>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "host/comm.h"

namespace llm {

class DpAdamW {
 public:
  DpAdamW(const GPT2Config& config, const AdamWConfig& hp, Comm& comm, int zero_stage);

  // model.grads() holds this rank's mean gradient. Syncs, clips to grad_clip (0 = off), updates model.params()
  // on every rank; t is the 1-based step. Returns the global norm before clipping (the same on every rank).
  // A non-finite norm skips the update (parameters and moments unchanged on every rank).
  // Collective.
  double step(GPT2Model& model, float lr, int t, float grad_clip);

  // Full (unsharded, num_parameters long) AdamW moments. set keeps this rank's shard; get gathers (collective).
  void set_state(const std::vector<float>& m, const std::vector<float>& v);
  void get_state(std::vector<float>* m, std::vector<float>* v);

  int zero_stage() const { return zero_; }

 private:
  double step_zero1(GPT2Model& model, float lr, int t, float grad_clip);

  Comm& comm_;
  int zero_;
  AdamWConfig hp_;
  size_t n_ = 0;                   // parameters
  size_t padded_ = 0;              // n rounded up to a multiple of the world size
  size_t begin_ = 0, end_ = 0;     // this rank's shard of the padded buffer
  std::unique_ptr<AdamW> full_;    // ZeRO-0: the whole state (ZeRO-1: none)
  std::vector<float> m_, v_;       // ZeRO-1: this rank's shard of the moments (end_ - begin_)
  std::vector<float> buf_;         // padded gradients (world > 1), then (ZeRO-1) the padded parameters
};

}  // namespace llm
