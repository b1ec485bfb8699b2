// ops.cpp — fp32 reference ops of GPT-2 (see ops.h for conventions: shapes, += backward, determinism).
#include "cpu/ops.h"

#include <cmath>
#include <vector>

#include "cpu/fastmath.h"
#include "cpu/gemm.h"

namespace ref {

// Loops with less work than this run on one thread: a parallel region costs microseconds (much more when the
// machine is oversubscribed), and results never depend on the thread count, so this changes only speed.
constexpr size_t kParallelMin = 1 << 16;

// ---------------------------------------------------------------------------------------------------------
// Embedding: token row + position row.

void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
#pragma omp parallel for schedule(static) if((size_t)B * T * C >= kParallelMin)
  for (int bt = 0; bt < B * T; bt++) {
    const int t = bt % T;
    const float* tok = wte + (size_t)inp[bt] * C;
    const float* pos = wpe + (size_t)t * C;
    float* o = out + (size_t)bt * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = tok[c] + pos[c];
  }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
  // The same token can appear several times, so rows are visited in order (deterministic) and threads
  // split the channel dimension instead.
#pragma omp parallel for schedule(static) if((size_t)B * T * C >= kParallelMin)
  for (int c0 = 0; c0 < C; c0 += 64) {
    const int c1 = c0 + 64 < C ? c0 + 64 : C;
    for (int bt = 0; bt < B * T; bt++) {
      const int t = bt % T;
      const float* d = dout + (size_t)bt * C;
      float* dtok = dwte + (size_t)inp[bt] * C;
      float* dpos = dwpe + (size_t)t * C;
      for (int c = c0; c < c1; c++) {
        dtok[c] += d[c];
        dpos[c] += d[c];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// LayerNorm: y = (x - mean)·rstd·w + b, rstd = 1/sqrt(var + 1e-5), var biased (divide by C).

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int N, int C) {
  const float eps = 1e-5f;
#pragma omp parallel for schedule(static) if((size_t)N * C >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++) sum += x[c];
    const float m = sum / C;
    float sq = 0.0f;  // two-pass variance: numerically safer than E[x²] - m²
#pragma omp simd reduction(+ : sq)
    for (int c = 0; c < C; c++) sq += (x[c] - m) * (x[c] - m);
    const float s = 1.0f / std::sqrt(sq / C + eps);
    float* y = out + (size_t)n * C;
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  // dx = rstd · (w·dy − mean(w·dy) − x̂ · mean(w·dy·x̂)), per row.
#pragma omp parallel for schedule(static) if((size_t)N * C >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    const float* dy = dout + (size_t)n * C;
    const float m = mean[n], s = rstd[n];
    float dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_xhat_mean)
    for (int c = 0; c < C; c++) {
      const float xhat = (x[c] - m) * s;
      const float dnorm = weight[c] * dy[c];
      dnorm_mean += dnorm;
      dnorm_xhat_mean += dnorm * xhat;
    }
    dnorm_mean /= C;
    dnorm_xhat_mean /= C;
    float* dx = dinp + (size_t)n * C;
#pragma omp simd
    for (int c = 0; c < C; c++) {
      const float xhat = (x[c] - m) * s;
      dx[c] += s * (weight[c] * dy[c] - dnorm_mean - xhat * dnorm_xhat_mean);
    }
  }
  // dw += Σ_n x̂·dy, db += Σ_n dy: threads split channels, rows summed in order.
#pragma omp parallel for schedule(static) if((size_t)N * C >= kParallelMin)
  for (int c0 = 0; c0 < C; c0 += 64) {
    const int c1 = c0 + 64 < C ? c0 + 64 : C;
    for (int n = 0; n < N; n++) {
      const float* x = inp + (size_t)n * C;
      const float* dy = dout + (size_t)n * C;
      const float m = mean[n], s = rstd[n];
#pragma omp simd
      for (int c = c0; c < c1; c++) {
        dweight[c] += (x[c] - m) * s * dy[c];
        dbias[c] += dy[c];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Linear layer: out = inp · Wᵀ + b. All three products go through gemm (cpu/gemm.h).

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  // A = inp (N,C), B = weightᵀ: B(k=c, j=oc) = weight[oc*C + c]; out is overwritten (bias added per column)
  gemm(out, OC, MatView{inp, (size_t)C, 1}, MatView{weight, 1, (size_t)C}, N, OC, C, false, bias);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, bool accumulate_dweight) {
  // dinp (N,C) += dout (N,OC) · weight (OC,C)
  if (dinp) gemm_accumulate(dinp, C, MatView{dout, (size_t)OC, 1}, MatView{weight, (size_t)C, 1}, N, C, OC);
  // dweight (OC,C) += doutᵀ (OC,N) · inp (N,C)   (or = when !accumulate_dweight)
  gemm(dweight, C, MatView{dout, 1, (size_t)OC}, MatView{inp, (size_t)C, 1}, OC, C, N, accumulate_dweight);
  if (dbias) {
    // Σ over rows, threads split output channels, rows in order.
#pragma omp parallel for schedule(static) if((size_t)N * OC >= kParallelMin)
    for (int o0 = 0; o0 < OC; o0 += 64) {
      const int o1 = o0 + 64 < OC ? o0 + 64 : OC;
      for (int n = 0; n < N; n++) {
        const float* d = dout + (size_t)n * OC;
#pragma omp simd
        for (int o = o0; o < o1; o++) dbias[o] += d[o];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Causal self-attention. For one (b, h, t): s[t2] = q_t·k_t2 / sqrt(hs) for t2 ≤ t, att = softmax(s),
// out_t = Σ_t2 drop(att)[t2] · v_t2.

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH,
                       const llm::DropoutSpec& drop) {
  const int hs = C / NH;
  const size_t C3 = (size_t)3 * C;
  const float scale = 1.0f / std::sqrt((float)hs);
  const float keep_scale = llm::dropout_scale(drop);
#pragma omp parallel for collapse(2) schedule(static) if((size_t)B * NH * T * T * (C / NH) >= kParallelMin)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      for (int t = 0; t < T; t++) {
        const float* q = qkv + ((size_t)b * T + t) * C3 + h * hs;
        float* a = att + (((size_t)b * NH + h) * T + t) * T;
        // scores and running max
        float maxval = -INFINITY;
        for (int t2 = 0; t2 <= t; t2++) {
          const float* k = qkv + ((size_t)b * T + t2) * C3 + C + h * hs;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int i = 0; i < hs; i++) dot += q[i] * k[i];
          a[t2] = dot * scale;
          if (a[t2] > maxval) maxval = a[t2];
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int t2 = 0; t2 <= t; t2++) {
          a[t2] = exp_approx(a[t2] - maxval);
          sum += a[t2];
        }
        const float inv = 1.0f / sum;
        for (int t2 = 0; t2 <= t; t2++) a[t2] *= inv;
        for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;  // masked (future) positions
        // weighted sum of values, with dropout on the attention weights
        float* o = out + ((size_t)b * T + t) * C + h * hs;
        for (int i = 0; i < hs; i++) o[i] = 0.0f;
        const uint64_t row = (((uint64_t)b * NH + h) * T + t) * T;
        for (int t2 = 0; t2 <= t; t2++) {
          float w = a[t2];
          if (drop.p > 0.0f) w = llm::dropout_keep(drop, row + t2) ? w * keep_scale : 0.0f;
          const float* v = qkv + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
#pragma omp simd
          for (int i = 0; i < hs; i++) o[i] += w * v[i];
        }
      }
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, const llm::DropoutSpec& drop) {
  const int hs = C / NH;
  const size_t C3 = (size_t)3 * C;
  const float scale = 1.0f / std::sqrt((float)hs);
  const float keep_scale = llm::dropout_scale(drop);
  // Each (b, h) touches only its own head's columns of dqkv, so the (b, h) loop is race-free.
#pragma omp parallel for collapse(2) schedule(static) if((size_t)B * NH * T * T * (C / NH) >= kParallelMin)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      std::vector<float> datt(T);
      for (int t = 0; t < T; t++) {
        const float* a = att + (((size_t)b * NH + h) * T + t) * T;
        const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
        const uint64_t row = (((uint64_t)b * NH + h) * T + t) * T;
        // through out_t = Σ w[t2] v_t2 with w = drop(att):  dw = dy·v, dv += w·dy
        for (int t2 = 0; t2 <= t; t2++) {
          float mask = 1.0f;
          if (drop.p > 0.0f) mask = llm::dropout_keep(drop, row + t2) ? keep_scale : 0.0f;
          const float* v = qkv + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
          float* dv = dqkv + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
          const float w = a[t2] * mask;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int i = 0; i < hs; i++) {
            dot += dy[i] * v[i];
            dv[i] += w * dy[i];
          }
          datt[t2] = dot * mask;
        }
        // through softmax: ds = att ⊙ (datt − Σ att·datt)
        float s = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) s += a[t2] * datt[t2];
        const float* q = qkv + ((size_t)b * T + t) * C3 + h * hs;
        float* dq = dqkv + ((size_t)b * T + t) * C3 + h * hs;
        // through s = q·k·scale
        for (int t2 = 0; t2 <= t; t2++) {
          const float ds = a[t2] * (datt[t2] - s) * scale;
          const float* k = qkv + ((size_t)b * T + t2) * C3 + C + h * hs;
          float* dk = dqkv + ((size_t)b * T + t2) * C3 + C + h * hs;
#pragma omp simd
          for (int i = 0; i < hs; i++) {
            dq[i] += ds * k[i];
            dk[i] += ds * q[i];
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// GELU (tanh approximation).

namespace {
constexpr float kGeluS = 0.7978845608028654f;  // sqrt(2/π)
constexpr float kGeluA = 0.044715f;
}  // namespace

void gelu_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin)
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanh_approx(kGeluS * (x + kGeluA * x * x * x)));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin)
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float th = tanh_approx(kGeluS * (x + kGeluA * x * x * x));
    const float dth = (1.0f - th * th) * kGeluS * (1.0f + 3.0f * kGeluA * x * x);  // d tanh(u)/dx
    dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * dth);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Residual add and dropout.

void residual_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin)
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

namespace {
// Calls f(i, kept) for every element i < n: kept = the element survives dropout. One Philox call yields the
// uniforms of 4 consecutive elements (host/philox.h mapping), so forward and backward see the same mask.
template <class F>
void for_each_dropout_mask(size_t n, const llm::DropoutSpec& drop, const F& f) {
#pragma omp parallel for schedule(static) if(n >= kParallelMin / 8)
  for (size_t q = 0; q < (n + 3) / 4; q++) {
    float u[4];
    llm::dropout_uniform4(drop.seed, drop.stream, q, u);
    for (size_t j = 0; j < 4 && 4 * q + j < n; j++) f(4 * q + j, u[j] >= drop.p);
  }
}
}  // namespace

void dropout_forward(float* out, const float* inp, size_t n, const llm::DropoutSpec& drop) {
  if (drop.p <= 0.0f) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin / 8)
    for (size_t i = 0; i < n; i++) out[i] = inp[i];
    return;
  }
  const float keep_scale = llm::dropout_scale(drop);
  for_each_dropout_mask(n, drop, [&](size_t i, bool kept) { out[i] = kept ? inp[i] * keep_scale : 0.0f; });
}

void dropout_backward(float* dinp, const float* dout, size_t n, const llm::DropoutSpec& drop) {
  if (drop.p <= 0.0f) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin / 8)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
    return;
  }
  const float keep_scale = llm::dropout_scale(drop);
  for_each_dropout_mask(n, drop, [&](size_t i, bool kept) {
    if (kept) dinp[i] += dout[i] * keep_scale;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Softmax + cross-entropy over the real vocabulary V (padding columns ignored).

float softmax_crossentropy_forward(float* losses, float* probs, const float* logits, const int* targets, int N, int V,
                                   int Vp) {
#pragma omp parallel for schedule(static) if((size_t)N * V >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* x = logits + (size_t)n * Vp;
    float* p = probs + (size_t)n * Vp;
    float maxval = -INFINITY;
#pragma omp simd reduction(max : maxval)
    for (int v = 0; v < V; v++) maxval = x[v] > maxval ? x[v] : maxval;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++) {
      p[v] = exp_approx(x[v] - maxval);
      sum += p[v];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int v = 0; v < V; v++) p[v] *= inv;
    for (int v = V; v < Vp; v++) p[v] = 0.0f;
    const int tgt = targets[n];
    // loss = logsumexp(x) − x[target] = log(sum) − (x[target] − max): accurate even when p[target] is tiny
    losses[n] = (tgt == -100) ? 0.0f : std::log(sum) - (x[tgt] - maxval);
  }
  double total = 0.0;
  int valid = 0;
  for (int n = 0; n < N; n++) {
    if (targets[n] == -100) continue;
    total += losses[n];
    valid++;
  }
  return valid > 0 ? (float)(total / valid) : 0.0f;
}

void softmax_crossentropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V, int Vp,
                                   float dloss, bool accumulate) {
#pragma omp parallel for schedule(static) if((size_t)N * V >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const int tgt = targets[n];
    const float* p = probs + (size_t)n * Vp;
    float* d = dlogits + (size_t)n * Vp;
    if (accumulate) {
      if (tgt == -100) continue;
#pragma omp simd
      for (int v = 0; v < V; v++) d[v] += p[v] * dloss;
    } else {  // one write pass: no clearing pass and no read of the old values (the buffer is 256×50304 on GPT-2)
      const float s = tgt == -100 ? 0.0f : dloss;
#pragma omp simd
      for (int v = 0; v < V; v++) d[v] = p[v] * s;
      for (int v = V; v < Vp; v++) d[v] = 0.0f;
      if (tgt == -100) continue;
    }
    d[tgt] -= dloss;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Optimizer pieces.

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int t) {
  adamw_update_scaled(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, 1.0f);
}

void adamw_update_scaled(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                         float beta2, float eps, float weight_decay, int t, float grad_scale) {
  const float bc1 = 1.0f - std::pow(beta1, (float)t);  // bias corrections
  const float bc2 = 1.0f - std::pow(beta2, (float)t);
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin)
  for (size_t i = 0; i < n; i++) {
    const float g = grad_scale == 1.0f ? grads[i] : grads[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / bc1, vhat = vi / bc2;
    params[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * params[i]);
  }
}

double global_grad_norm(const float* grads, size_t n) {
  constexpr size_t kBlock = 1 << 14;  // fixed blocking => same sum for any thread count
  const size_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(nblocks);
#pragma omp parallel for schedule(static) if(n >= kParallelMin)
  for (size_t blk = 0; blk < nblocks; blk++) {
    const size_t i0 = blk * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n;
    // 8 interleaved partial sums (element i goes to lane i % 8), added in lane order: a fixed order that runs
    // as one vector FMA chain instead of a serial double add chain (several times fewer cycles per element)
    typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));
    typedef double v8d __attribute__((vector_size(64)));
    v8d acc = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      const v8d x = __builtin_convertvector(*reinterpret_cast<const v8f*>(grads + i), v8d);
      acc += x * x;
    }
    double s = 0.0;
    for (int l = 0; l < 8; l++) s += acc[l];
    for (; i < i1; i++) s += (double)grads[i] * grads[i];
    partial[blk] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

void scale_inplace(float* x, size_t n, float scale) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= kParallelMin)
  for (size_t i = 0; i < n; i++) x[i] *= scale;
}

void clip_gradients(float* grads, size_t n, float max_norm, double norm) {
  if (norm > max_norm) scale_inplace(grads, n, (float)(max_norm / norm));
}

}  // namespace ref
