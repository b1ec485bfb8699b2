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
    const int L = c.num_layers, C = c.channels, NH = c.num_heads, B = B_, T = T_, BT = B * T;
    const size_t n = (size_t)BT * C, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C, att = (size_t)B * NH * T * T;
    const llm::DropoutSpec nodrop{};
    using namespace llm;
    timed(kEncoderFwd, [&] { ref::encoder_forward(enc_.data(), inp_.data(), p(kWte, 0, 0), p(kWpe, 0, 0), B, T, C); });
    timed(kResidualFwd, [&] { ref::dropout_forward(x_.data(), enc_.data(), n, nodrop); });
    for (int l = 0; l < L; l++) {
      float *x = x_.data() + l * n, *ln1 = ln1_.data() + l * n, *qkv = qkv_.data() + l * n * 3;
      float *atty = atty_.data() + l * n, *res2 = res2_.data() + l * n, *ln2 = ln2_.data() + l * n;
      float *fch = fch_.data() + l * n * 4, *fchg = fchg_.data() + l * n * 4;
      timed(kLayernormFwd, [&] {
        ref::layernorm_forward(ln1, mean1_.data() + l * BT, rstd1_.data() + l * BT, x, p(kLn1w, l, C),
                               p(kLn1b, l, C), BT, C);
      });
      const float* qkvb = c.qkv_bias ? p(kQkvb, l, C3) : nullptr;
      timed(kMatmulFwd, [&] { ref::matmul_forward(qkv, ln1, p(kQkvw, l, C3 * C), qkvb, BT, C, 3 * C); });
      timed(kAttentionFwd, [&] { ref::attention_forward(atty, att_.data() + l * att, qkv, B, T, C, NH, nodrop); });
      timed(kMatmulFwd, [&] { ref::matmul_forward(proj_.data(), atty, p(kAttprojw, l, C * C), p(kAttprojb, l, C),
                                                  BT, C, C); });
      timed(kResidualFwd, [&] { ref::residual_forward(res2, x, proj_.data(), n); });
      timed(kLayernormFwd, [&] {
        ref::layernorm_forward(ln2, mean2_.data() + l * BT, rstd2_.data() + l * BT, res2, p(kLn2w, l, C),
                               p(kLn2b, l, C), BT, C);
      });
      timed(kMatmulFwd, [&] { ref::matmul_forward(fch, ln2, p(kFcw, l, C4 * C), p(kFcb, l, C4), BT, C, 4 * C); });
      timed(kGeluFwd, [&] { ref::gelu_forward(fchg, fch, n * 4); });
      timed(kMatmulFwd, [&] { ref::matmul_forward(proj_.data(), fchg, p(kFcprojw, l, C * C4), p(kFcprojb, l, C),
                                                  BT, 4 * C, C); });
      timed(kResidualFwd, [&] { ref::residual_forward(x + n, res2, proj_.data(), n); });
    }
    timed(kLayernormFwd, [&] {
      ref::layernorm_forward(lnf_.data(), meanf_.data(), rstdf_.data(), x_.data() + L * n, p(kLnfw, 0, 0),
                             p(kLnfb, 0, 0), BT, C);
    });
    timed(kMatmulFwd, [&] {
      ref::matmul_forward(logits_.data(), lnf_.data(), head(), nullptr, BT, C, c.padded_vocab_size);
    });
    timed(kSoftmaxCeFwd, [&] {
      ref::softmax_crossentropy_forward(losses_.data(), probs_.data(), logits_.data(), inp_.data(), BT, c.vocab_size,
                                        c.padded_vocab_size);
    });
  }

  void backward() {
    const llm::GPT2Config& c = m_.config();
    const int L = c.num_layers, C = c.channels, NH = c.num_heads, B = B_, T = T_, BT = B * T;
    const size_t n = (size_t)BT * C, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C, att = (size_t)B * NH * T * T;
    const llm::DropoutSpec nodrop{};
    using namespace llm;
    auto clear = [](std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); };
    timed(kResidualBwd, [&] { clear(dlnf_); clear(dres_); });
    timed(kSoftmaxCeBwd, [&] {
      ref::softmax_crossentropy_backward(dlogits_.data(), probs_.data(), inp_.data(), BT, c.vocab_size,
                                         c.padded_vocab_size, 1.0f / BT, false);
    });
    timed(kMatmulBwd, [&] {
      ref::matmul_backward(dlnf_.data(), c.tied_head ? g(kWte, 0, 0) : g(kLmHead, 0, 0), nullptr, dlogits_.data(),
                           lnf_.data(), head(), BT, C, c.padded_vocab_size, false);
    });
    timed(kLayernormBwd, [&] {
      ref::layernorm_backward(dres_.data(), g(kLnfw, 0, 0), g(kLnfb, 0, 0), dlnf_.data(), x_.data() + L * n,
                              p(kLnfw, 0, 0), meanf_.data(), rstdf_.data(), BT, C);
    });
    for (int l = L - 1; l >= 0; l--) {
      const float *x = x_.data() + l * n, *ln1 = ln1_.data() + l * n, *qkv = qkv_.data() + l * n * 3;
      const float *atty = atty_.data() + l * n, *res2 = res2_.data() + l * n, *ln2 = ln2_.data() + l * n;
      const float *fch = fch_.data() + l * n * 4, *fchg = fchg_.data() + l * n * 4;
      timed(kResidualBwd, [&] {
        clear(dfchg_), clear(dfch_), clear(dln_);
        std::copy(dres_.begin(), dres_.end(), dres2_.begin());
      });
      timed(kMatmulBwd, [&] { ref::matmul_backward(dfchg_.data(), g(kFcprojw, l, C * C4), g(kFcprojb, l, C),
                                                   dres_.data(), fchg, p(kFcprojw, l, C * C4), BT, 4 * C, C, false); });
      timed(kGeluBwd, [&] { ref::gelu_backward(dfch_.data(), fch, dfchg_.data(), n * 4); });
      timed(kMatmulBwd, [&] { ref::matmul_backward(dln_.data(), g(kFcw, l, C4 * C), g(kFcb, l, C4), dfch_.data(), ln2,
                                                   p(kFcw, l, C4 * C), BT, C, 4 * C, false); });
      timed(kLayernormBwd, [&] {
        ref::layernorm_backward(dres2_.data(), g(kLn2w, l, C), g(kLn2b, l, C), dln_.data(), res2, p(kLn2w, l, C),
                                mean2_.data() + l * BT, rstd2_.data() + l * BT, BT, C);
      });
      timed(kResidualBwd, [&] {
        clear(datty_), clear(dqkv_), clear(dln_);
        std::copy(dres2_.begin(), dres2_.end(), dx_.begin());
      });
      timed(kMatmulBwd, [&] { ref::matmul_backward(datty_.data(), g(kAttprojw, l, C * C), g(kAttprojb, l, C),
                                                   dres2_.data(), atty, p(kAttprojw, l, C * C), BT, C, C, false); });
      timed(kAttentionBwd, [&] {
        ref::attention_backward(dqkv_.data(), datty_.data(), qkv, att_.data() + l * att, B, T, C, NH, nodrop);
      });
      float* dqkvb = c.qkv_bias ? g(kQkvb, l, C3) : nullptr;
      timed(kMatmulBwd, [&] { ref::matmul_backward(dln_.data(), g(kQkvw, l, C3 * C), dqkvb, dqkv_.data(), ln1,
                                                   p(kQkvw, l, C3 * C), BT, C, 3 * C, false); });
      timed(kLayernormBwd, [&] {
        ref::layernorm_backward(dx_.data(), g(kLn1w, l, C), g(kLn1b, l, C), dln_.data(), x, p(kLn1w, l, C),
                                mean1_.data() + l * BT, rstd1_.data() + l * BT, BT, C);
      });
      std::swap(dres_, dx_);
    }
    timed(kResidualBwd, [&] { clear(denc_); ref::dropout_backward(denc_.data(), dres_.data(), n, nodrop); });
    timed(kEncoderBwd, [&] {
      ref::encoder_backward(g(kWte, 0, 0), g(kWpe, 0, 0), denc_.data(), inp_.data(), B, T, C);
    });
  }

  const float* head() { return m_.config().tied_head ? m_.param(llm::kWte) : m_.param(llm::kLmHead); }

  llm::GPT2Model& m_;
  int B_, T_;
  std::array<double, kNumOpFamilies> ms_{};
  std::vector<int> inp_;
  std::vector<float> x_, ln1_, ln2_, atty_, res2_, mean1_, rstd1_, mean2_, rstd2_, qkv_, att_, fch_, fchg_, enc_,
      proj_, lnf_, meanf_, rstdf_, logits_, probs_, losses_, dlogits_, dlnf_, dres_, dres2_, dx_, dln_, datty_,
      dqkv_, dfch_, dfchg_, denc_;
};

}  // namespace dev
