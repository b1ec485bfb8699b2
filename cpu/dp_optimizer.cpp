// dp_optimizer.cpp — ZeRO-0 / ZeRO-1 AdamW over a Comm (see dp_optimizer.h).
#include "cpu/dp_optimizer.h"

#include <algorithm>
#include <cmath>

#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

DpAdamW::DpAdamW(const GPT2Config& config, const AdamWConfig& hp, Comm& comm, int zero_stage)
    : comm_(comm), zero_(zero_stage), hp_(hp), n_(num_parameters(config)) {
  if (zero_stage != 0 && zero_stage != 1) fail("ZeRO stage must be 0 or 1 (got ", zero_stage, ")");
  padded_ = Comm::padded(n_, comm.world_size());
  begin_ = comm.shard_begin(padded_);
  end_ = comm.shard_end(padded_);
  if (zero_ == 0) {
    full_ = std::make_unique<AdamW>(config, hp);
  } else {
    m_.assign(end_ - begin_, 0.0f);
    v_.assign(end_ - begin_, 0.0f);
  }
}

double DpAdamW::step(GPT2Model& model, float lr, int t, float grad_clip) {
  if (model.num_params() != n_) fail("DpAdamW: model has ", model.num_params(), " parameters, optimizer ", n_);
  if (!model.grads()) fail("DpAdamW: the model has no gradients (call zero_grad/backward first)");
  if (zero_ == 1) return step_zero1(model, lr, t, grad_clip);
  const int world = comm_.world_size();
  if (world > 1) {  // mean over ranks of the ranks' mean gradients, summed as a padded buffer like ZeRO-1's
    buf_.resize(padded_);
    std::copy(model.grads(), model.grads() + n_, buf_.begin());
    std::fill(buf_.begin() + n_, buf_.end(), 0.0f);
    comm_.all_reduce_sum(buf_.data(), padded_, CommType::kFp32, nullptr);
    std::copy(buf_.begin(), buf_.begin() + n_, model.grads());
    ref::scale_inplace(model.grads(), n_, 1.0f / static_cast<float>(world));
  }
  const double norm = grad_clip > 0 ? clip_grad_norm(model, grad_clip, ClipStyle::kLlmc) : grad_norm(model);
  if (!std::isfinite(norm)) return norm;  // NaN/Inf gradient: no update (weights and AdamW state unchanged)
  full_->step(model, lr, t);
  return norm;
}

double DpAdamW::step_zero1(GPT2Model& model, float lr, int t, float grad_clip) {
  const int world = comm_.world_size();
  // (padded) gradients: this rank's shard becomes the sum over ranks, then the mean
  buf_.resize(padded_);
  std::copy(model.grads(), model.grads() + n_, buf_.begin());
  std::fill(buf_.begin() + n_, buf_.end(), 0.0f);
  comm_.reduce_scatter_sum(buf_.data(), padded_, CommType::kFp32, nullptr);
  const size_t real_end = std::min(end_, n_);  // the padding tail is never a parameter
  const size_t own = real_end > begin_ ? real_end - begin_ : 0;
  float* g = buf_.data() + begin_;
  if (world > 1) ref::scale_inplace(g, own, 1.0f / static_cast<float>(world));

  // global norm: squares of the own shard, summed over ranks
  const double own_norm = ref::global_grad_norm(g, own);
  const double norm = std::sqrt(comm_.all_reduce_sum_host(own_norm * own_norm));
  if (!std::isfinite(norm)) return norm;  // the same on every rank: nobody updates, parameters stay in sync
  const float scale = grad_clip > 0 ? clip_scale(norm, grad_clip, ClipStyle::kLlmc) : 1.0f;

  // AdamW on the own shard, tensor by tensor (weight decay is per tensor)
  const auto decay = decay_mask(hp_.decay);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto pt = static_cast<ParamTensor>(k);
    const size_t lo = std::max(model.param_offset(pt), begin_);
    const size_t hi = std::min(model.param_offset(pt) + model.param_size(pt), real_end);
    if (lo >= hi) continue;
    ref::adamw_update_scaled(model.params() + lo, buf_.data() + lo, m_.data() + (lo - begin_),
                             v_.data() + (lo - begin_), hi - lo, lr, hp_.beta1, hp_.beta2, hp_.eps,
                             decay[k] ? hp_.weight_decay : 0.0f, t, scale);
  }

  // everyone gets every shard's new parameters
  std::copy(model.params() + begin_, model.params() + real_end, buf_.begin() + begin_);
  comm_.all_gather(buf_.data(), padded_, CommType::kFp32, nullptr);
  std::copy(buf_.begin(), buf_.begin() + n_, model.params());
  return norm;
}

void DpAdamW::set_state(const std::vector<float>& m, const std::vector<float>& v) {
  if (m.size() != n_ || v.size() != n_)
    fail("optimizer state has ", m.size(), "/", v.size(), " moments for a model of ", n_, " parameters");
  if (zero_ == 0) {
    full_->m() = m;
    full_->v() = v;
    return;
  }
  const size_t real_end = std::min(end_, n_);
  std::fill(m_.begin(), m_.end(), 0.0f);
  std::fill(v_.begin(), v_.end(), 0.0f);
  if (real_end > begin_) {
    std::copy(m.begin() + begin_, m.begin() + real_end, m_.begin());
    std::copy(v.begin() + begin_, v.begin() + real_end, v_.begin());
  }
}

void DpAdamW::get_state(std::vector<float>* m, std::vector<float>* v) {
  if (zero_ == 0) {
    *m = full_->m();
    *v = full_->v();
    return;
  }
  for (auto [shard, out] : {std::pair{&m_, m}, std::pair{&v_, v}}) {
    out->assign(padded_, 0.0f);
    std::copy(shard->begin(), shard->end(), out->begin() + begin_);
    comm_.all_gather(out->data(), padded_, CommType::kFp32, nullptr);
    out->resize(n_);
  }
}

}  // namespace llm
