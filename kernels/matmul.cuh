// matmul.cuh — nn.Linear forward/backward: out = inp·Wᵀ + bias, with optional fused GELU.
//
// Why: matmuls are ~all of GPT-2's FLOPs. Two backends sit behind ONE interface:
//   * Own: a shared-memory, register-tiled GEMM (64×64 output tile per 256-thread block, 4×4 outputs per
//     thread, k-tiles of 16). It is plain CUDA, so it runs on the CUDA-on-CPU layer (what CI tests) and on any
//     GPU, and it is correct for any N, C, OC (tile edges are zero-filled on load and masked on store).
//   * CublasLt: cuBLASLt with BIAS / GELU_AUX_BIAS / DGELU epilogues (llm.c's choice), compiled only under nvcc;
//     descriptor, layouts and algorithm cached per problem (MatmulPlanCache, kernels/matmul_plan.h).
//   Every call is one column-major MatmulProblem; matmul_try_vendor (matmul_plan.h) decides which backend runs
//   it: Own on purpose, Auto = cuBLASLt when built and willing (declines counted), CublasLt = required (a decline
//   is an llm::Error naming the problem: the trainer never silently runs the ~50x slower own GEMM).
// Numerics: floatX in memory, fp32 accumulation, each output sums k in ascending order (like the reference).
// Gradients follow llm.c: dinp is OVERWRITTEN (=), dweight and dbias ACCUMULATE (+=).
// dbias is deterministic: per-column sums in a fixed order, optional row-split partials in an fp32 scratch
// summed by a second kernel (no float atomics).
// GELU fusion (tanh approximation):
//   forward : if pre_gelu != nullptr, pre_gelu = inp·Wᵀ+b (N,OC) is stored and out = gelu(pre_gelu). The own
//             kernel applies GELU to the stored (rounded) pre-activation, so it equals gelu_forward bit for bit;
//             cuBLASLt's GELU epilogue rounds its own way (same tanh formula, ulp-level differences).
//   backward: if dinp_pre_gelu != nullptr, dinp = (dout·W) ⊙ gelu'(dinp_pre_gelu) — i.e. the input of this
//             matmul was gelu(dinp_pre_gelu), and the gradient flows straight to the pre-activation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_cpu/compat.cuh"
#include "kernels/common.cuh"
#include "kernels/gelu.cuh"  // gelu_value / gelu_grad (same fp32 formula as the reference)
#include "kernels/step_profile.cuh"  // --profile-step: matmul time
#include "kernels/matmul_plan.h"  // MatmulProblem, the plan cache, the decline rule (host code, tested on the CPU)

#if defined(__CUDACC__) && !defined(LLM_NO_CUBLASLT)
#include <cublasLt.h>  // GPU-only backend; the CPU layer never sees it
#define LLM_HAVE_CUBLASLT 1
#else
#define LLM_HAVE_CUBLASLT 0
#endif

namespace kern {

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
      if (ep.pre_gelu_out) {  // GELU of the STORED pre-activation: bit for bit what gelu_forward makes of it
        const floatX pre = from_float<floatX>(v);
        ep.pre_gelu_out[o] = pre;
        v = gelu_value(to_float(pre));
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
// cuBLASLt vendor (nvcc only): plans cached per MatmulProblem (kernels/matmul_plan.h). Row-major X(r,c) is
// column-major Xᵀ, so every call is phrased column-major.
#if LLM_HAVE_CUBLASLT
namespace matmul_lt {
constexpr size_t kWorkspaceBytes = 32u << 20;
constexpr uint32_t kAlignBytes = 16;  // the heuristic picks algorithms valid for any 16-byte aligned pointers

inline cudaDataType_t dtype(MatmulType t) { return t == MatmulType::kBf16 ? CUDA_R_16BF : CUDA_R_32F; }

struct Backend {
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  cublasLtHandle_t handle = nullptr;

  // Descriptor, layouts and the heuristic's first algorithm for p; false (why set) when cuBLASLt has none.
  bool create(const MatmulProblem& p, Plan* plan, std::string* why) {
    const cudaDataType_t t = dtype(p.type);
    const cublasComputeType_t compute =
        p.tf32 && p.type == MatmulType::kFp32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const cublasOperation_t opA = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opB = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
    if (p.epi == MatmulEpi::kBias) e = CUBLASLT_EPILOGUE_BIAS;
    if (p.epi == MatmulEpi::kGeluAuxBias) e = CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    if (p.epi == MatmulEpi::kGeluAux) e = CUBLASLT_EPILOGUE_GELU_AUX;
    if (p.epi == MatmulEpi::kDGelu) e = CUBLASLT_EPILOGUE_DGELU;
    const int64_t aux_ld = p.m;
    const size_t ws = kWorkspaceBytes;
    cublasLtMatmulPreference_t pref = nullptr;
    auto set = [](cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; };
    bool ok = set(cublasLtMatmulDescCreate(&plan->desc, compute, CUDA_R_32F)) &&
              set(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA))) &&
              set(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB))) &&
              set(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)));
    if (p.epi == MatmulEpi::kBias || p.epi == MatmulEpi::kGeluAuxBias)
      ok = ok && set(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &t, sizeof(t)));
    if (p.epi == MatmulEpi::kGeluAuxBias || p.epi == MatmulEpi::kGeluAux || p.epi == MatmulEpi::kDGelu)
      ok = ok &&
           set(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                              sizeof(aux_ld))) &&
           set(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &t, sizeof(t)));
    ok = ok &&
         set(cublasLtMatrixLayoutCreate(&plan->a, t, p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k,
                                        p.trans_a ? p.k : p.m)) &&
         set(cublasLtMatrixLayoutCreate(&plan->b, t, p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n,
                                        p.trans_b ? p.n : p.k)) &&
         set(cublasLtMatrixLayoutCreate(&plan->d, t, p.m, p.n, p.m)) && set(cublasLtMatmulPreferenceCreate(&pref)) &&
         set(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      ok = ok && set(cublasLtMatmulPreferenceSetAttribute(pref, attr, &kAlignBytes, sizeof(kAlignBytes)));
    if (!ok) *why = "descriptor setup failed";
    cublasLtMatmulHeuristicResult_t heur{};
    int found = 0;
    if (ok && (!set(cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->d, plan->d, pref, 1,
                                                   &heur, &found)) ||
               found == 0)) {
      ok = false;
      *why = "the heuristic found no algorithm";
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ok) plan->algo = heur.algo;
    else destroy(plan);
    return ok;
  }
  void destroy(Plan* plan) {
    if (plan->d) cublasLtMatrixLayoutDestroy(plan->d);
    if (plan->b) cublasLtMatrixLayoutDestroy(plan->b);
    if (plan->a) cublasLtMatrixLayoutDestroy(plan->a);
    if (plan->desc) cublasLtMatmulDescDestroy(plan->desc);
    *plan = Plan{};
  }
};

class Vendor final : public MatmulVendor {
 public:
  const char* name() const override { return "cuBLASLt"; }
  bool run(const MatmulProblem& p, const MatmulArgs& g, std::string* why) override {
    if (!ready(why)) return false;
    for (const void* ptr : {(const void*)g.d, g.a, g.b, g.bias, (const void*)g.aux})
      if ((uintptr_t)ptr % kAlignBytes != 0) {
        *why = "a pointer is not 16-byte aligned";
        return false;
      }
    const Backend::Plan* plan = cache_.get(p, why);
    if (!plan) return false;
    // only the pointers change between calls of one problem: set them on the cached descriptor
    bool ok = true;
    if (g.bias)
      ok = cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)) ==
           CUBLAS_STATUS_SUCCESS;
    if (g.aux)
      ok = ok && cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.aux,
                                                sizeof(g.aux)) == CUBLAS_STATUS_SUCCESS;
    const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
    const cublasStatus_t s = ok ? cublasLtMatmul(cache_.backend().handle, plan->desc, &alpha, g.a, plan->a, g.b,
                                                 plan->b, &beta, g.d, plan->d, g.d, plan->d, &plan->algo, workspace_,
                                                 kWorkspaceBytes, g.stream)
                                : CUBLAS_STATUS_INVALID_VALUE;
    if (s != CUBLAS_STATUS_SUCCESS) *why = std::string("cublasLtMatmul failed: ") + cublasLtGetStatusString(s);
    return s == CUBLAS_STATUS_SUCCESS;
  }
  MatmulPlanCache<Backend>& cache() { return cache_; }

 private:
  bool ready(std::string* why) {
    if (!tried_) {
      tried_ = true;
      if (cublasLtCreate(&cache_.backend().handle) != CUBLAS_STATUS_SUCCESS) cache_.backend().handle = nullptr;
      if (cudaMalloc(&workspace_, kWorkspaceBytes) != cudaSuccess) {
        (void)cudaGetLastError();
        workspace_ = nullptr;
      }
    }
    if (!cache_.backend().handle || !workspace_) *why = "no cuBLASLt handle or workspace";
    return cache_.backend().handle && workspace_;
  }
  MatmulPlanCache<Backend> cache_;
  void* workspace_ = nullptr;
  bool tried_ = false;
};

inline Vendor& vendor() {
  static Vendor v;  // one per process (and device: a process drives one GPU)
  return v;
}
}  // namespace matmul_lt
#endif

// The vendor GEMM of this build: a test's override, else cuBLASLt under nvcc, else none.
inline MatmulVendor* matmul_vendor() {
  if (matmul_vendor_override()) return matmul_vendor_override();
#if LLM_HAVE_CUBLASLT
  return &matmul_lt::vendor();
#else
  return nullptr;
#endif
}

// How the matmuls of a model run: the backend (matmul_plan.h) and TF32 for fp32 (off by default: parity).
struct MatmulOptions {
  MatmulBackend backend = MatmulBackend::Auto;
  bool tf32 = false;
  MatmulOptions() = default;
  MatmulOptions(MatmulBackend b, bool t = false) : backend(b), tf32(t) {}  // NOLINT: a bare backend converts
};

template <typename floatX>
constexpr MatmulType matmul_type() {
  return std::is_same<floatX, float>::value ? MatmulType::kFp32 : MatmulType::kBf16;
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

// The own GEMM on a column-major problem: D(m,n) = op(A)·op(B) is the row-major (n,m) matrix
// D'(j,i) = Σ_k op(B)(k,j)·op(A)(i,k), i.e. matmul_tiled with A' = op(B)ᵀ and B' = op(A)ᵀ read through strides.
template <typename floatX>
void matmul_own(const MatmulProblem& p, const MatmulArgs& g) {
  const ptrdiff_t lda = p.trans_a ? p.k : p.m, ldb = p.trans_b ? p.n : p.k;  // as stored, column-major
  MatmulEpilogue<floatX> ep;
  ep.bias = (const floatX*)g.bias;
  if (p.epi == MatmulEpi::kGeluAuxBias || p.epi == MatmulEpi::kGeluAux) ep.pre_gelu_out = (floatX*)g.aux;
  if (p.epi == MatmulEpi::kDGelu) ep.dgelu_pre = (const floatX*)g.aux;
  ep.accumulate = g.accumulate ? 1 : 0;
  matmul_tiled((floatX*)g.d, (const floatX*)g.b, (const floatX*)g.a, p.n, p.m, p.k, /*sAm*/ p.trans_b ? 1 : ldb,
               /*sAk*/ p.trans_b ? ldb : 1, /*sBk*/ p.trans_a ? 1 : lda, /*sBn*/ p.trans_a ? lda : 1, /*ldd*/ p.m, ep,
               g.stream);
}

// One column-major problem: the vendor when `backend` asks for it and it accepts (matmul_try_vendor's rule),
// else the own GEMM.
template <typename floatX>
void matmul_run(const MatmulProblem& p, const MatmulArgs& g, MatmulBackend backend) {
  if (!matmul_try_vendor(matmul_vendor(), backend, p, g)) matmul_own<floatX>(p, g);
}

// out(N,OC) = inp(N,C)·weight(OC,C)ᵀ + bias(OC); with pre_gelu (N,OC): pre_gelu = that, out = gelu(that).
template <typename floatX>
void matmul_forward(floatX* out, floatX* pre_gelu, const floatX* inp, const floatX* weight, const floatX* bias, int N,
                    int C, int OC, cudaStream_t stream, MatmulOptions opt = {}) {
  ProfileScope profile(ProfilePhase::kMatmul, stream);
  // column-major outᵀ(OC,N) = W(OC,C)·inpᵀ(C,N): A = weight stored as col-major (C,OC), transposed; B = inpᵀ.
  MatmulProblem p;
  p.m = OC, p.n = N, p.k = C, p.trans_a = true, p.trans_b = false;
  p.epi = pre_gelu ? (bias ? MatmulEpi::kGeluAuxBias : MatmulEpi::kGeluAux) : (bias ? MatmulEpi::kBias : MatmulEpi::kNone);
  p.type = matmul_type<floatX>(), p.tf32 = opt.tf32;
  MatmulArgs g;
  g.d = out, g.a = weight, g.b = inp, g.bias = bias, g.aux = pre_gelu, g.stream = stream;
  matmul_run<floatX>(p, g, opt.backend);
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
                     cudaStream_t stream, MatmulOptions opt = {}) {
  ProfileScope profile(ProfilePhase::kMatmul, stream);
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
  MatmulProblem p;
  p.type = matmul_type<floatX>(), p.tf32 = opt.tf32;
  MatmulArgs g;
  g.stream = stream;
  if (dinp) {  // dinpᵀ(C,N) = Wᵀ(C,OC)·doutᵀ(OC,N): A = weight as col-major (C,OC), B = dout as col-major (OC,N)
    p.m = C, p.n = N, p.k = OC, p.trans_a = false, p.trans_b = false;
    p.epi = dinp_pre_gelu ? MatmulEpi::kDGelu : MatmulEpi::kNone;
    g.d = dinp, g.a = weight, g.b = dout, g.aux = (void*)dinp_pre_gelu, g.accumulate = false;
    matmul_run<floatX>(p, g, opt.backend);
  }
  if (dweight) {  // dweightᵀ(C,OC) += inpᵀ(C,N)·dout(N,OC): A = inp as col-major (C,N), B = dout col-major, transposed
    p.m = C, p.n = OC, p.k = N, p.trans_a = false, p.trans_b = true, p.epi = MatmulEpi::kNone;
    g.d = dweight, g.a = inp, g.b = dout, g.aux = nullptr, g.accumulate = true;
    matmul_run<floatX>(p, g, opt.backend);
  }
}

}  // namespace kern
