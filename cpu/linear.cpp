// linear.cpp — see linear.h.
#include "cpu/linear.h"

#include <cstddef>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/ops.h"

namespace llm {

void linear_forward(float* out, const float* x, int N, const Linear& L, float* lora_h) {
  ref::matmul_forward(out, x, L.w, L.b, N, L.in, L.out);
  if (!L.lora) return;
  const float* A = L.lora;                           // (r,in)
  const float* Bm = A + (size_t)L.rank * L.in;       // (out,r)
  ref::matmul_forward(lora_h, x, A, nullptr, N, L.in, L.rank);
  std::vector<float> low((size_t)N * L.out);         // h·Bᵀ (N,out)
  ref::matmul_forward(low.data(), lora_h, Bm, nullptr, N, L.rank, L.out);
  for (size_t i = 0; i < low.size(); i++) out[i] += L.scale * low[i];
}

void linear_backward(float* dx, const float* dout, const float* x, int N, const Linear& L, const float* lora_h,
                     bool accumulate_dw) {
  if (L.dw)
    ref::matmul_backward(dx, L.dw, L.db, dout, x, L.w, N, L.in, L.out, accumulate_dw);
  else if (dx)  // frozen: only dx (N,in) += dout (N,out) · W (out,in)
    ref::gemm_accumulate(dx, L.in, ref::MatView{dout, (size_t)L.out, 1}, ref::MatView{L.w, (size_t)L.in, 1}, N,
                         L.in, L.out);
  if (!L.lora) return;
  const float* A = L.lora;
  const float* Bm = A + (size_t)L.rank * L.in;
  float* dA = L.lora_grad;
  float* dB = dA + (size_t)L.rank * L.in;
  // the branch is scale·h·Bᵀ: its output gradient is scale·dout, back through B into dh (N,r), then through A
  std::vector<float> sdout((size_t)N * L.out), dh((size_t)N * L.rank, 0.0f);
  for (size_t i = 0; i < sdout.size(); i++) sdout[i] = L.scale * dout[i];
  ref::matmul_backward(dh.data(), dB, nullptr, sdout.data(), lora_h, Bm, N, L.rank, L.out);
  ref::matmul_backward(dx, dA, nullptr, dh.data(), x, A, N, L.in, L.rank);
}

}  // namespace llm
