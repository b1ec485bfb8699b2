// matmul.cuh — nn.Linear forward/backward: out = inp·Wᵀ + bias, with optional fused GELU.
//
// Why: matmuls are ~all of GPT-2's FLOPs. Two backends sit behind ONE interface:
//   * Own: a shared-memory, register-tiled GEMM (64×64 output tile per 256-thread block, 4×4 outputs per
//     thread, k-tiles of 16). It is plain CUDA, so it runs on the CUDA-on-CPU layer (what CI tests) and on any
//     GPU, and it is correct for any N, C, OC (tile edges are zero-filled on load and masked on store).
//   * CublasLt: cuBLASLt with BIAS / GELU_AUX_BIAS / DGELU epilogues (llm.c's choice), compiled only under nvcc.
//   MatmulBackend::Auto picks cuBLASLt when it is compiled in and accepts the problem, else the own kernel.
// Numerics: floatX in memory, fp32 accumulation, each output sums k in ascending order (like the reference).
// Gradients follow llm.c: dinp is OVERWRITTEN (=), dweight and dbias ACCUMULATE (+=).
// dbias is deterministic: per-column sums in a fixed order, optional row-split partials in an fp32 scratch
// summed by a second kernel (no float atomics).
// GELU fusion (tanh approximation):
//   forward : if pre_gelu != nullptr, pre_gelu = inp·Wᵀ+b (N,OC) is stored and out = gelu(pre_gelu).
//   backward: if dinp_pre_gelu != nullptr, dinp = (dout·W) ⊙ gelu'(dinp_pre_gelu) — i.e. the input of this
//             matmul was gelu(dinp_pre_gelu), and the gradient flows straight to the pre-activation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_cpu/compat.cuh"
#include "kernels/common.cuh"
#include "kernels/gelu.cuh"  // gelu_value / gelu_grad (same fp32 formula as the reference)

#if defined(__CUDACC__) && !defined(LLM_NO_CUBLASLT)
#include <cublasLt.h>  // GPU-only backend; the CPU layer never sees it
#define LLM_HAVE_CUBLASLT 1
#else
#define LLM_HAVE_CUBLASLT 0
#endif

namespace kern {

enum class MatmulBackend { Auto, Own, CublasLt };

// ---------------------------------------------------------------------------------------------------------------
// Own GEMM: D(M,N) (+)= A(M,K)·B(K,N) with arbitrary strides, then an epilogue per output element.
// A(m,k) = A[m*sAm + k*sAk], B(k,n) = B[k*sBk + n*sBn], D(m,n) = D[m*ldd + n].
template <typename floatX>
struct MatmulEpilogue {
  const floatX* bias = nullptr;       // (N) added per column, or nullptr
  floatX* pre_gelu_out = nullptr;     // if set: store the pre-activation here (same layout as D), D = gelu(.)
  const floatX* dgelu_pre = nullptr;  // if set: D = result ⊙ gelu'(dgelu_pre) (same layout as D)
  int accumulate = 0;                 // 1: D += result, 0: D = result
};

constexpr int kMmBM = 64, kMmBN = 64, kMmBK = 16;  // block tile
constexpr int kMmTX = 16, kMmTY = 16;              // 256 threads; each owns a 4×4 strided micro-tile
constexpr int kMmThreads = kMmTX * kMmTY;

template <typename floatX>
__global__ void __launch_bounds__(kMmThreads)
    matmul_tiled_kernel(floatX* D, const floatX* A, const floatX* B, int M, int N, int K, ptrdiff_t sAm,
                        ptrdiff_t sAk, ptrdiff_t sBk, ptrdiff_t sBn, ptrdiff_t ldd, MatmulEpilogue<floatX> ep) {
  __shared__ float As[kMmBK][kMmBM + 4];  // As[k][m]; +4 keeps rows 16-byte aligned and spreads banks
  __shared__ float Bs[kMmBK][kMmBN + 4];  // Bs[k][n]
  const int tx = threadIdx.x % kMmTX, ty = threadIdx.x / kMmTX;
  const int m0 = blockIdx.y * kMmBM, n0 = blockIdx.x * kMmBN;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kMmBK) {
    // Cooperative tile loads, 4 elements per thread each; the fast-varying index follows the unit stride so
    // neighbouring threads read neighbouring addresses. Out-of-range elements are zero (harmless in the sum).
    for (int r = 0; r < kMmBM * kMmBK / kMmThreads; r++) {
      const int e = threadIdx.x + r * kMmThreads;
      const int kk = (sAk == 1) ? e % kMmBK : e / kMmBM;
      const int mm = (sAk == 1) ? e / kMmBK : e % kMmBM;
      const int gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < K) ? to_float(A[gm * sAm + gk * sAk]) : 0.0f;
    }
    for (int r = 0; r < kMmBN * kMmBK / kMmThreads; r++) {
      const int e = threadIdx.x + r * kMmThreads;
      const int kk = (sBk == 1) ? e % kMmBK : e / kMmBN;
      const int nn = (sBk == 1) ? e / kMmBK : e % kMmBN;
      const int gn = n0 + nn, gk = k0 + kk;
      Bs[kk][nn] = (gn < N && gk < K) ? to_float(B[gk * sBk + gn * sBn]) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kMmBK; kk++) {
      float a[4], b[4];
      for (int i = 0; i < 4; i++) a[i] = As[kk][ty + i * kMmTY];
      for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + j * kMmTX];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();  // the next iteration overwrites the tiles
  }
  for (int i = 0; i < 4; i++) {
    const int m = m0 + ty + i * kMmTY;
    if (m >= M) continue;
    for (int j = 0; j < 4; j++) {
      const int n = n0 + tx + j * kMmTX;
      if (n >= N) continue;
      const ptrdiff_t o = m * ldd + n;
      float v = acc[i][j];
      if (ep.bias) v += to_float(ep.bias[n]);
      if (ep.pre_gelu_out) {
        ep.pre_gelu_out[o] = from_float<floatX>(v);
        v = gelu_value(v);
      }
      if (ep.dgelu_pre) v *= gelu_grad(to_float(ep.dgelu_pre[o]));
      if (ep.accumulate) v += to_float(D[o]);
      D[o] = from_float<floatX>(v);
    }
  }
}

// dbias: partial[split][o] = Σ_{rows of this split} dout[row][o]. Block (32 columns × 8 row lanes); each
// thread sums its strided rows in order, then lane-row 0 adds the 8 partial sums in order. With one split the
// result goes straight into dbias (+=); otherwise into an fp32 scratch for matmul_dbias_finish_kernel.
template <typename floatX>
__global__ void matmul_dbias_partial_kernel(floatX* dbias, float* partial, const floatX* dout, int N, int OC,
                                            int rows_per_split) {
  __shared__ float sums[8][33];
  const int o = blockIdx.x * 32 + threadIdx.x;
  const int r0 = blockIdx.y * rows_per_split;
  const int r1 = min(N, r0 + rows_per_split);
  float s = 0.0f;
  if (o < OC)
    for (int r = r0 + threadIdx.y; r < r1; r += 8) s += to_float(dout[(size_t)r * OC + o]);
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float t = 0.0f;
    for (int y = 0; y < 8; y++) t += sums[y][threadIdx.x];
    if (partial) partial[(size_t)blockIdx.y * OC + o] = t;
    else dbias[o] = from_float<floatX>(to_float(dbias[o]) + t);
  }
}

template <typename floatX>
__global__ void matmul_dbias_finish_kernel(floatX* dbias, const float* partial, int OC, int nsplit) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float t = 0.0f;
  for (int s = 0; s < nsplit; s++) t += partial[(size_t)s * OC + o];  // fixed order: deterministic
  dbias[o] = from_float<floatX>(to_float(dbias[o]) + t);
}

// ---------------------------------------------------------------------------------------------------------------
// cuBLASLt backend (nvcc only). Row-major X(r,c) is column-major Xᵀ, so every call is phrased column-major.
#if LLM_HAVE_CUBLASLT
namespace matmul_lt {
inline cublasLtHandle_t handle() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t x = nullptr;
    if (cublasLtCreate(&x) != CUBLAS_STATUS_SUCCESS) x = nullptr;
    return x;
  }();
  return h;
}
constexpr size_t kWorkspaceBytes = 32u << 20;
inline void* workspace() {
  static void* ws = [] {
    void* p = nullptr;
    if (cudaMalloc(&p, kWorkspaceBytes) != cudaSuccess) p = nullptr;
    return p;
  }();
  return ws;
}
template <typename T> inline cudaDataType_t dtype();
template <> inline cudaDataType_t dtype<float>() { return CUDA_R_32F; }
template <> inline cudaDataType_t dtype<__nv_bfloat16>() { return CUDA_R_16BF; }

enum Epi { kNone, kBias, kGeluAuxBias, kDGelu };

// Column-major D(m,n) = op(A)·op(B) (+ D if accumulate), with epilogue. Returns false if cuBLASLt declines
// (no handle, misaligned pointers, no algorithm); the caller then uses the own kernel.
template <typename floatX>
bool matmul(floatX* d, const floatX* a, const floatX* b, int m, int n, int k, bool transA, bool transB,
            bool accumulate, Epi epi, const floatX* bias, const floatX* aux, cudaStream_t stream) {
  auto aligned = [](const void* p) { return ((uintptr_t)p % 16) == 0; };
  if (!handle() || !workspace() || !aligned(d) || !aligned(a) || !aligned(b) || (bias && !aligned(bias)) ||
      (aux && !aligned(aux)) || m % 8 != 0)
    return false;
  const cudaDataType_t t = dtype<floatX>();
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  bool ok = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS;
  const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)) == 0;
  ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)) == 0;
  cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
  if (epi == kBias) e = CUBLASLT_EPILOGUE_BIAS;
  if (epi == kGeluAuxBias) e = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  if (epi == kDGelu) e = CUBLASLT_EPILOGUE_DGELU;
  ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)) == 0;
  if (bias && (epi == kBias || epi == kGeluAuxBias)) {
    ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &t, sizeof(t)) == 0;
    ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)) == 0;
  }
  if (epi == kGeluAuxBias || epi == kDGelu) {
    const int64_t aux_ld = m;
    ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)) == 0;
    ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)) == 0;
    ok = ok && cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &t, sizeof(t)) == 0;
  }
  ok = ok && cublasLtMatrixLayoutCreate(&la, t, transA ? k : m, transA ? m : k, transA ? k : m) == 0;
  ok = ok && cublasLtMatrixLayoutCreate(&lb, t, transB ? n : k, transB ? k : n, transB ? n : k) == 0;
  ok = ok && cublasLtMatrixLayoutCreate(&ld, t, m, n, m) == 0;
  ok = ok && cublasLtMatmulPreferenceCreate(&pref) == 0;
  size_t ws = kWorkspaceBytes;
  ok = ok && cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)) == 0;
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  ok = ok && cublasLtMatmulAlgoGetHeuristic(handle(), desc, la, lb, ld, ld, pref, 1, &heur, &found) == 0 && found > 0;
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  ok = ok && cublasLtMatmul(handle(), desc, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo, workspace(),
                            kWorkspaceBytes, stream) == CUBLAS_STATUS_SUCCESS;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (ld) cublasLtMatrixLayoutDestroy(ld);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (desc) cublasLtMatmulDescDestroy(desc);
  return ok;
}
}  // namespace matmul_lt
#endif

// Number of calls where cuBLASLt was requested (Auto/CublasLt in an nvcc build) but declined, so the own kernel
// ran instead (dev/cuda/matmul.cu checks it before reporting cuBLASLt timings).
inline int& matmul_cublaslt_fallbacks() {
  static int n = 0;
  return n;
}

// True when `backend` resolves to cuBLASLt in this build (Auto prefers it where it exists).
inline bool matmul_uses_cublaslt(MatmulBackend backend) {
  return LLM_HAVE_CUBLASLT && backend != MatmulBackend::Own;
}

// ---------------------------------------------------------------------------------------------------------------
// Host launchers.

template <typename floatX>
void matmul_tiled(floatX* D, const floatX* A, const floatX* B, int M, int N, int K, ptrdiff_t sAm, ptrdiff_t sAk,
                  ptrdiff_t sBk, ptrdiff_t sBn, ptrdiff_t ldd, const MatmulEpilogue<floatX>& ep, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  const dim3 grid((N + kMmBN - 1) / kMmBN, (M + kMmBM - 1) / kMmBM);
  launch_kernel(matmul_tiled_kernel<floatX>, grid, dim3(kMmThreads), 0, stream, D, A, B, M, N, K, sAm, sAk, sBk, sBn,
                ldd, ep);
  CUDA_CHECK(cudaGetLastError());
}

// out(N,OC) = inp(N,C)·weight(OC,C)ᵀ + bias(OC); with pre_gelu (N,OC): pre_gelu = that, out = gelu(that).
template <typename floatX>
void matmul_forward(floatX* out, floatX* pre_gelu, const floatX* inp, const floatX* weight, const floatX* bias, int N,
                    int C, int OC, cudaStream_t stream, MatmulBackend backend = MatmulBackend::Auto) {
#if LLM_HAVE_CUBLASLT
  if (backend != MatmulBackend::Own) {
    const auto epi = pre_gelu ? matmul_lt::kGeluAuxBias : (bias ? matmul_lt::kBias : matmul_lt::kNone);
    // column-major outᵀ(OC,N) = Wᵀ... : A = weight as (C,OC) col-major, transposed; B = inpᵀ (C,N).
    if (matmul_lt::matmul(out, weight, inp, OC, N, C, true, false, false, epi, bias, pre_gelu, stream)) return;
    matmul_cublaslt_fallbacks()++;
  }
#endif
  (void)backend;
  MatmulEpilogue<floatX> ep;
  ep.bias = bias;
  ep.pre_gelu_out = pre_gelu;
  matmul_tiled(out, inp, weight, N, OC, C, /*sAm*/ C, /*sAk*/ 1, /*sBk*/ 1, /*sBn*/ C, /*ldd*/ OC, ep, stream);
}

// fp32 scratch (in floats) that lets matmul_backward split the dbias reduction over rows (more parallelism).
inline int matmul_dbias_splits(int N) {
  int s = N / 256;  // ≥ 256 rows per split keeps the partial sums cheap
  return s < 1 ? 1 : (s > 32 ? 32 : s);
}
inline size_t matmul_backward_scratch_floats(int N, int OC) { return (size_t)matmul_dbias_splits(N) * OC; }

// dinp(N,C) = dout·weight  [⊙ gelu'(dinp_pre_gelu)]   (overwritten; skipped if dinp == nullptr)
// dweight(OC,C) += doutᵀ·inp                           (skipped if dweight == nullptr: a frozen weight)
// dbias(OC) += Σ_rows dout                             (skipped if dbias == nullptr; deterministic)
// scratch: nullptr or ≥ matmul_backward_scratch_floats(N, OC) floats of device memory.
template <typename floatX>
void matmul_backward(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                     const floatX* weight, const floatX* dinp_pre_gelu, float* scratch, int N, int C, int OC,
                     cudaStream_t stream, MatmulBackend backend = MatmulBackend::Auto) {
  if (dbias) {
    const int nsplit = scratch ? matmul_dbias_splits(N) : 1;
    const int rows = (N + nsplit - 1) / nsplit;
    launch_kernel(matmul_dbias_partial_kernel<floatX>, dim3((OC + 31) / 32, nsplit), dim3(32, 8), 0, stream, dbias,
                  nsplit > 1 ? scratch : (float*)nullptr, dout, N, OC, rows);
    CUDA_CHECK(cudaGetLastError());
    if (nsplit > 1) {
      launch_kernel(matmul_dbias_finish_kernel<floatX>, dim3((OC + 255) / 256), dim3(256), 0, stream, dbias,
                    (const float*)scratch, OC, nsplit);
      CUDA_CHECK(cudaGetLastError());
    }
  }
  bool dinp_done = (dinp == nullptr), dweight_done = (dweight == nullptr);
#if LLM_HAVE_CUBLASLT
  if (backend != MatmulBackend::Own) {
    // dinpᵀ(C,N) = Wᵀ(C,OC)·doutᵀ(OC,N): A = weight as col-major (C,OC), B = dout as col-major (OC,N).
    if (!dinp_done)
      dinp_done = matmul_lt::matmul(dinp, weight, dout, C, N, OC, false, false, false,
                                    dinp_pre_gelu ? matmul_lt::kDGelu : matmul_lt::kNone, (const floatX*)nullptr,
                                    dinp_pre_gelu, stream);
    // dweightᵀ(C,OC) += inpᵀ(C,N)·dout(N,OC): A = inp as col-major (C,N), B = dout as col-major (OC,N) transposed.
    if (!dweight_done)
      dweight_done = matmul_lt::matmul(dweight, inp, dout, C, OC, N, false, true, true, matmul_lt::kNone,
                                       (const floatX*)nullptr, (const floatX*)nullptr, stream);
    if (!dinp_done || !dweight_done) matmul_cublaslt_fallbacks()++;
  }
#endif
  (void)backend;
  if (!dinp_done) {
    MatmulEpilogue<floatX> ep;
    ep.dgelu_pre = dinp_pre_gelu;
    matmul_tiled(dinp, dout, weight, N, C, OC, /*sAm*/ OC, /*sAk*/ 1, /*sBk*/ C, /*sBn*/ 1, /*ldd*/ C, ep, stream);
  }
  if (!dweight_done) {
    MatmulEpilogue<floatX> ep;
    ep.accumulate = 1;
    // A(o,n) = dout[n*OC + o], B(n,c) = inp[n*C + c]
    matmul_tiled(dweight, dout, inp, OC, C, N, /*sAm*/ 1, /*sAk*/ OC, /*sBk*/ C, /*sBn*/ 1, /*ldd*/ C, ep, stream);
  }
}

}  // namespace kern
