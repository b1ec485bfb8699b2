// op_times.h — where one CPU training step goes, per op family, timed from outside the model.
//
// Why here: the reference model (cpu/gpt2_model.cpp) reads like the math and carries no timing code, so
// bench_cpu_step replays the cpu/ops.h calls of one forward + backward itself — the same ops, shapes, counts and
// order as GPT2Model with dropout off, on per-layer buffers of the model's sizes, with the model's weights and
// gradient buffer — and times each call. The slow non-GEMM ops can then be found without a profiler (`perf` has
// no cycle counter on these VMs).
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/ops.h"

namespace dev {

enum OpFamily {
  kEncoderFwd, kLayernormFwd, kMatmulFwd, kAttentionFwd, kGeluFwd, kResidualFwd, kSoftmaxCeFwd, kSoftmaxCeBwd,
  kMatmulBwd, kLayernormBwd, kAttentionBwd, kGeluBwd, kResidualBwd /* residual/dropout bwd, clears, copies */,
  kEncoderBwd, kNumOpFamilies
};

inline const char* op_family_name(int k) {
  static const char* const names[kNumOpFamilies] = {
      "encoder fwd", "layernorm fwd", "matmul fwd", "attention fwd", "gelu fwd", "residual+dropout fwd",
      "softmax+CE fwd", "softmax+CE bwd", "matmul bwd", "layernorm bwd", "attention bwd", "gelu bwd",
      "residual+dropout bwd, clears", "encoder bwd"};
  return names[k];
}

class OpTimes {
 public:
  // model: its weights are read and its gradient buffer written (call after the benchmark's own steps).
  OpTimes(llm::GPT2Model& model, int B, int T) : m_(model), B_(B), T_(T) {
    const llm::GPT2Config& c = model.config();
    L_ = c.num_layers, C_ = c.channels, NH_ = c.num_heads, BT_ = B * T;
    n_ = (size_t)BT_ * C_, C3_ = 3 * (size_t)C_, C4_ = 4 * (size_t)C_, att_n_ = (size_t)B * NH_ * T * T;
    const size_t L = c.num_layers, C = c.channels, BT = (size_t)B * T, Vp = c.padded_vocab_size;
    auto make = [](std::vector<float>& v, size_t n) { v.assign(n, 0.01f); };
    make(x_, (L + 1) * BT * C);
    for (auto* v : {&ln1_, &ln2_, &atty_, &res2_}) make(*v, L * BT * C);
    for (auto* v : {&mean1_, &rstd1_, &mean2_, &rstd2_}) make(*v, L * BT);
    make(qkv_, L * BT * 3 * C);
    make(att_, L * B * c.num_heads * T * T);
    make(fch_, L * BT * 4 * C);
    make(fchg_, L * BT * 4 * C);
    for (auto* v : {&enc_, &proj_, &lnf_, &dlnf_, &dres_, &dres2_, &dx_, &dln_, &datty_, &denc_}) make(*v, BT * C);
    make(meanf_, BT);
    make(rstdf_, BT);
    make(dqkv_, BT * 3 * C);
    make(dfch_, BT * 4 * C);
    make(dfchg_, BT * 4 * C);
    make(logits_, BT * Vp);
    make(probs_, BT * Vp);
    make(dlogits_, BT * Vp);
    make(losses_, BT);
    inp_.resize(BT);
    for (size_t i = 0; i < BT; i++) inp_[i] = (int)((i * 2654435761u) % (unsigned)c.vocab_size);
  }

  // Wall ms per family of one step's calls.
  std::array<double, kNumOpFamilies> time_one_step() {
    ms_.fill(0.0);
    forward();
    backward();
    return ms_;
  }

 private:
  template <class F>
  void timed(OpFamily f, F&& call) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    ms_[f] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  const float* p(llm::ParamTensor k, size_t l, size_t per) { return m_.param(k) + l * per; }
  float* g(llm::ParamTensor k, size_t l, size_t per) { return m_.grad(k) + l * per; }

  void forward() {
    const llm::GPT2Config& c = m_.config();
    const llm::DropoutSpec nodrop{};
    using namespace llm;
    timed(kEncoderFwd, [&] {
      ref::encoder_forward(enc_.data(), inp_.data(), p(kWte, 0, 0), p(kWpe, 0, 0), B_, T_, C_);
    });
    timed(kResidualFwd, [&] { ref::dropout_forward(x_.data(), enc_.data(), n_, nodrop); });
    for (int l = 0; l < L_; l++) {
      float *x = x_.data() + l * n_, *ln1 = ln1_.data() + l * n_, *qkv = qkv_.data() + l * n_ * 3;
      float *atty = atty_.data() + l * n_, *res2 = res2_.data() + l * n_, *ln2 = ln2_.data() + l * n_;
      float *fch = fch_.data() + l * n_ * 4, *fchg = fchg_.data() + l * n_ * 4;
      timed(kLayernormFwd, [&] {
        ref::layernorm_forward(ln1, mean1_.data() + l * BT_, rstd1_.data() + l * BT_, x, p(kLn1w, l, C_),
                               p(kLn1b, l, C_), BT_, C_);
      });
      const float* qkvb = c.qkv_bias ? p(kQkvb, l, C3_) : nullptr;
      timed(kMatmulFwd, [&] { ref::matmul_forward(qkv, ln1, p(kQkvw, l, C3_ * C_), qkvb, BT_, C_, 3 * C_); });
      timed(kAttentionFwd, [&] {
        ref::attention_forward(atty, att_.data() + l * att_n_, qkv, B_, T_, C_, NH_, nodrop);
      });
      timed(kMatmulFwd, [&] { ref::matmul_forward(proj_.data(), atty, p(kAttprojw, l, C_ * C_), p(kAttprojb, l, C_),
                                                  BT_, C_, C_); });
      timed(kResidualFwd, [&] { ref::residual_forward(res2, x, proj_.data(), n_); });
      timed(kLayernormFwd, [&] {
        ref::layernorm_forward(ln2, mean2_.data() + l * BT_, rstd2_.data() + l * BT_, res2, p(kLn2w, l, C_),
                               p(kLn2b, l, C_), BT_, C_);
      });
      timed(kMatmulFwd, [&] { ref::matmul_forward(fch, ln2, p(kFcw, l, C4_ * C_), p(kFcb, l, C4_), BT_, C_, 4 * C_); });
      timed(kGeluFwd, [&] { ref::gelu_forward(fchg, fch, n_ * 4); });
      timed(kMatmulFwd, [&] { ref::matmul_forward(proj_.data(), fchg, p(kFcprojw, l, C_ * C4_), p(kFcprojb, l, C_),
                                                  BT_, 4 * C_, C_); });
      timed(kResidualFwd, [&] { ref::residual_forward(x + n_, res2, proj_.data(), n_); });
    }
    timed(kLayernormFwd, [&] {
      ref::layernorm_forward(lnf_.data(), meanf_.data(), rstdf_.data(), x_.data() + L_ * n_, p(kLnfw, 0, 0),
                             p(kLnfb, 0, 0), BT_, C_);
    });
    timed(kMatmulFwd, [&] {
      ref::matmul_forward(logits_.data(), lnf_.data(), head(), nullptr, BT_, C_, c.padded_vocab_size);
    });
    timed(kSoftmaxCeFwd, [&] {
      ref::softmax_crossentropy_forward(losses_.data(), probs_.data(), logits_.data(), inp_.data(), BT_, c.vocab_size,
                                        c.padded_vocab_size);
    });
  }

  void backward() {
    const llm::GPT2Config& c = m_.config();
    const llm::DropoutSpec nodrop{};
    using namespace llm;
    auto clear = [](std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); };
    timed(kResidualBwd, [&] { clear(dlnf_); clear(dres_); });
    timed(kSoftmaxCeBwd, [&] {
      ref::softmax_crossentropy_backward(dlogits_.data(), probs_.data(), inp_.data(), BT_, c.vocab_size,
                                         c.padded_vocab_size, 1.0f / BT_, false);
    });
    timed(kMatmulBwd, [&] {
      ref::matmul_backward(dlnf_.data(), c.tied_head ? g(kWte, 0, 0) : g(kLmHead, 0, 0), nullptr, dlogits_.data(),
                           lnf_.data(), head(), BT_, C_, c.padded_vocab_size, false);
    });
    timed(kLayernormBwd, [&] {
      ref::layernorm_backward(dres_.data(), g(kLnfw, 0, 0), g(kLnfb, 0, 0), dlnf_.data(), x_.data() + L_ * n_,
                              p(kLnfw, 0, 0), meanf_.data(), rstdf_.data(), BT_, C_);
    });
    for (int l = L_ - 1; l >= 0; l--) {
      const float *x = x_.data() + l * n_, *ln1 = ln1_.data() + l * n_, *qkv = qkv_.data() + l * n_ * 3;
      const float *atty = atty_.data() + l * n_, *res2 = res2_.data() + l * n_, *ln2 = ln2_.data() + l * n_;
      const float *fch = fch_.data() + l * n_ * 4, *fchg = fchg_.data() + l * n_ * 4;
      timed(kResidualBwd, [&] {
        clear(dfchg_), clear(dfch_), clear(dln_);
        std::copy(dres_.begin(), dres_.end(), dres2_.begin());
      });
      timed(kMatmulBwd, [&] { ref::matmul_backward(dfchg_.data(), g(kFcprojw, l, C_ * C4_), g(kFcprojb, l, C_),
                                                   dres_.data(), fchg, p(kFcprojw, l, C_ * C4_), BT_, 4 * C_, C_,
                                                   false); });
      timed(kGeluBwd, [&] { ref::gelu_backward(dfch_.data(), fch, dfchg_.data(), n_ * 4); });
      timed(kMatmulBwd, [&] { ref::matmul_backward(dln_.data(), g(kFcw, l, C4_ * C_), g(kFcb, l, C4_), dfch_.data(),
                                                   ln2, p(kFcw, l, C4_ * C_), BT_, C_, 4 * C_, false); });
      timed(kLayernormBwd, [&] {
        ref::layernorm_backward(dres2_.data(), g(kLn2w, l, C_), g(kLn2b, l, C_), dln_.data(), res2, p(kLn2w, l, C_),
                                mean2_.data() + l * BT_, rstd2_.data() + l * BT_, BT_, C_);
      });
      timed(kResidualBwd, [&] {
        clear(datty_), clear(dqkv_), clear(dln_);
        std::copy(dres2_.begin(), dres2_.end(), dx_.begin());
      });
      timed(kMatmulBwd, [&] { ref::matmul_backward(datty_.data(), g(kAttprojw, l, C_ * C_), g(kAttprojb, l, C_),
                                                   dres2_.data(), atty, p(kAttprojw, l, C_ * C_), BT_, C_, C_,
                                                   false); });
      timed(kAttentionBwd, [&] {
        ref::attention_backward(dqkv_.data(), datty_.data(), qkv, att_.data() + l * att_n_, B_, T_, C_, NH_, nodrop);
      });
      float* dqkvb = c.qkv_bias ? g(kQkvb, l, C3_) : nullptr;
      timed(kMatmulBwd, [&] { ref::matmul_backward(dln_.data(), g(kQkvw, l, C3_ * C_), dqkvb, dqkv_.data(), ln1,
                                                   p(kQkvw, l, C3_ * C_), BT_, C_, 3 * C_, false); });
      timed(kLayernormBwd, [&] {
        ref::layernorm_backward(dx_.data(), g(kLn1w, l, C_), g(kLn1b, l, C_), dln_.data(), x, p(kLn1w, l, C_),
                                mean1_.data() + l * BT_, rstd1_.data() + l * BT_, BT_, C_);
      });
      std::swap(dres_, dx_);
    }
    timed(kResidualBwd, [&] { clear(denc_); ref::dropout_backward(denc_.data(), dres_.data(), n_, nodrop); });
    timed(kEncoderBwd, [&] {
      ref::encoder_backward(g(kWte, 0, 0), g(kWpe, 0, 0), denc_.data(), inp_.data(), B_, T_, C_);
    });
  }

  const float* head() { return m_.config().tied_head ? m_.param(llm::kWte) : m_.param(llm::kLmHead); }

  llm::GPT2Model& m_;
  int B_, T_, L_, C_, NH_, BT_;  // the step's shapes
  size_t n_, C3_, C4_, att_n_;   // B·T·C, 3C, 4C, B·NH·T·T
  std::array<double, kNumOpFamilies> ms_{};
  std::vector<int> inp_;
  std::vector<float> x_, ln1_, ln2_, atty_, res2_, mean1_, rstd1_, mean2_, rstd2_, qkv_, att_, fch_, fchg_, enc_,
      proj_, lnf_, meanf_, rstdf_, logits_, probs_, losses_, dlogits_, dlnf_, dres_, dres2_, dx_, dln_, datty_,
      dqkv_, dfch_, dfchg_, denc_;
};

}  // namespace dev
