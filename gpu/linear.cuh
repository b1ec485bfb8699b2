// linear.cuh — the device GPT-2's linears (qkv, attproj, fc, fcproj and the head), each with an optional LoRA
// adapter: y = x·Wᵀ + b [+ s·(x·Aᵀ)·Bᵀ, s = alpha/r].
//
// Why one place: pretraining runs plain matmuls, LoRA fine-tuning adds a low-rank branch to every linear; GPT2
// (gpu/gpt2_gpu.cuh) calls these two functions for both, so the trunk's op sequence is written once.
// Slots: block l's linear k (host/finetune_spec.h LinearKind) is l·kNumBlockLinears + k, the head is
// L·kNumBlockLinears. Adapter of slot s: A (r,in) at a[s] with B (out,r) right after it; their gradients likewise
// at da[s] (accumulated, +=). h = x·Aᵀ (N,r) is kept per slot for backward.
// GELU: with pre_gelu, forward stores pre_gelu = the linear's output and writes out = gelu(pre_gelu); backward's
// pre_gelu is the pre-activation of this linear's INPUT (dx = (dout·W [+ adapter]) ⊙ gelu'(pre_gelu)). Without an
// adapter both go to the matmul's fused epilogue; with one, the adapter is added first and GELU runs after.
#pragma once
#include <algorithm>
#include <utility>
#include <vector>

#include "cuda_cpu/compat.cuh"
#include "gpu/gpt2_params.cuh"  // DeviceArray
#include "host/finetune_spec.h"  // LinearKind: the slots
#include "kernels/cls_head.cuh"  // scaled_add
#include "kernels/gelu.cuh"
#include "kernels/matmul.cuh"

namespace gpu {

template <class floatX>
class Linears {
 public:
  struct Adapters {
    int rank = 0;  // 0: no adapters
    float alpha = 0.0f;
    std::vector<const floatX*> a;  // per slot: A (r,in), then B (out,r)
    std::vector<floatX*> da;       // per slot: dA, then dB
  };

  void set_adapters(Adapters ad) {
    ad_ = std::move(ad);
    rows_ = width_ = 0;
  }
  bool any() const { return ad_.rank > 0; }
  bool has(int slot) const { return ad_.rank > 0 && slot >= 0 && slot < (int)ad_.a.size(); }
  // Scratch for up to `rows` rows and linears up to `width` wide (kept; grows only).
  void reserve(size_t rows, size_t width) {
    if (!any() || (rows <= rows_ && width <= width_)) return;
    rows_ = std::max(rows, rows_);
    width_ = std::max(width, width_);
    const size_t r = ad_.rank;
    h_.resize(ad_.a.size() * rows_ * r);
    tmp_.resize(rows_ * width_);
    dh_.resize(rows_ * r);
    dx_.resize(rows_ * width_);
    dsum_.resize(rows_ * width_);
  }

  // out (N,out) = x (N,in)·Wᵀ + b [+ adapter]  (with pre_gelu: see the top)
  void forward(floatX* out, floatX* pre_gelu, const floatX* x, const floatX* w, const floatX* b, int N, int in,
               int out_dim, int slot, cudaStream_t stream, kern::MatmulOptions backend) {
    if (!has(slot)) {
      kern::matmul_forward(out, pre_gelu, x, w, b, N, in, out_dim, stream, backend);
      return;
    }
    const int r = ad_.rank;
    floatX* y = pre_gelu ? pre_gelu : out;
    const floatX* A = ad_.a[slot];
    kern::matmul_forward(y, (floatX*)nullptr, x, w, b, N, in, out_dim, stream, backend);
    kern::matmul_forward(h(slot), (floatX*)nullptr, x, A, (const floatX*)nullptr, N, in, r, stream, backend);
    kern::matmul_forward(tmp_.get(), (floatX*)nullptr, (const floatX*)h(slot), A + (size_t)r * in,
                         (const floatX*)nullptr, N, r, out_dim, stream, backend);
    kern::scaled_add(y, (const floatX*)tmp_.get(), ad_.alpha / r, (size_t)N * out_dim, true, stream);
    if (pre_gelu) kern::gelu_forward(out, (const floatX*)pre_gelu, (size_t)N * out_dim, stream);
  }

  // dx (N,in) = dout·W [+ adapter path] [⊙ gelu'(pre_gelu)] (overwritten; null: not needed);
  // dw, db += (null: frozen, no weight-gradient GEMM); the adapter's dA, dB +=.
  void backward(floatX* dx, floatX* dw, floatX* db, const floatX* dout, const floatX* x, const floatX* w,
                const floatX* pre_gelu, float* scratch, int N, int in, int out_dim, int slot, cudaStream_t stream,
                kern::MatmulOptions backend) {
    if (!has(slot)) {
      kern::matmul_backward(dx, dw, db, dout, x, w, pre_gelu, scratch, N, in, out_dim, stream, backend);
      return;
    }
    const int r = ad_.rank;
    const floatX* A = ad_.a[slot];
    floatX* dA = ad_.da[slot];
    floatX* dsum = dx && pre_gelu ? dsum_.get() : dx;
    const floatX* none = nullptr;
    kern::matmul_backward(dsum, dw, db, dout, x, w, none, scratch, N, in, out_dim, stream, backend);
    kern::scaled_add(tmp_.get(), dout, ad_.alpha / r, (size_t)N * out_dim, false, stream);  // s·dout
    kern::matmul_backward(dh_.get(), dA + (size_t)r * in, (floatX*)nullptr, (const floatX*)tmp_.get(),
                          (const floatX*)h(slot), A + (size_t)r * in, none, scratch, N, r, out_dim, stream,
                          backend);  // through B
    kern::matmul_backward(dx ? dx_.get() : (floatX*)nullptr, dA, (floatX*)nullptr, (const floatX*)dh_.get(), x, A, none,
                          scratch, N, in, r, stream, backend);  // through A
    if (!dx) return;
    kern::scaled_add(dsum, (const floatX*)dx_.get(), 1.0f, (size_t)N * in, true, stream);
    if (pre_gelu) kern::gelu_backward(dx, pre_gelu, (const floatX*)dsum, (size_t)N * in, false, stream);
  }

 private:
  floatX* h(int slot) const { return h_.get() + (size_t)slot * rows_ * ad_.rank; }

  Adapters ad_;
  size_t rows_ = 0, width_ = 0;
  DeviceArray<floatX> h_, tmp_, dh_, dx_, dsum_;
};

}  // namespace gpu
