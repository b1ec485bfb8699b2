// dev/cuda/attention.cu — causal self-attention lab (GPT-2: qkv (B,T,3C) -> out (B,T,C)).
//
// Versions (argv[1]; argv[2] = fp32 | bf16, default both):
//   1  naive forward: one thread per query row, three sweeps over the keys in global memory (max, Σexp, Σp·v)
//   2  kernels/attention.cuh: flash-style forward (online softmax, K/V tiles in shared memory, lse saved) and
//      its backward (probabilities recomputed from lse; dq kernel + dk/dv kernel, no atomics)
//   3  cuDNN SDPA (cudnn_frontend graph API) forward + backward, the speed reference. GPU builds only, and only
//      when compiled with -DLLM_DEV_CUDNN and cudnn_frontend.h is on the include path (scripts/gpu_check.sh
//      tries that and falls back); otherwise it reports "skipped".
// Validation: out against ref::attention_forward, dq/dk/dv against ref::attention_backward, every element.
// Timing (GPU): FLOPs counted as FlashAttention does for causal attention: forward 2 matmuls over the lower
// triangle = 4·B·NH·hs·T(T+1)/2, backward 2.5× forward.
// GPU shape: GPT-2 124M, B=8, T=1024, C=768, NH=12. CPU layer: B=1, T=70, C=128, NH=2 (hs 64, a partial tile).
#include "kernels/attention.cuh"
#include "dev/cuda/common.cuh"
#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#if defined(__CUDACC__) && defined(LLM_DEV_CUDNN) && __has_include(<cudnn_frontend.h>)
#define DEV_HAVE_CUDNN 1
#include <cudnn_frontend.h>
#include <memory>
#include <unordered_map>
#else
#define DEV_HAVE_CUDNN 0
#endif

// ---- version 1: naive forward (hs <= 128) -----------------------------------------------------------------------------
template <typename floatX>
__global__ void attention_naive_kernel(floatX* out, const floatX* qkv, int B, int T, int C, int NH) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;  // (b, h, t)
  if (idx >= B * NH * T) return;
  const int t = idx % T, h = (idx / T) % NH, b = idx / (T * NH), hs = C / NH;
  const float scale = 1.0f / sqrtf((float)hs);
  const floatX* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
  auto score = [&](int t2) {
    const floatX* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
    float s = 0.0f;
    for (int d = 0; d < hs; d++) s += kern::to_float(q[d]) * kern::to_float(k[d]);
    return s * scale;
  };
  float m = -INFINITY;
  for (int t2 = 0; t2 <= t; t2++) m = fmaxf(m, score(t2));
  float l = 0.0f;
  for (int t2 = 0; t2 <= t; t2++) l += expf(score(t2) - m);
  float acc[128];  // hs <= 128 (checked by the harness)
  for (int d = 0; d < hs; d++) acc[d] = 0.0f;
  for (int t2 = 0; t2 <= t; t2++) {
    const float p = expf(score(t2) - m) / l;
    const floatX* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
    for (int d = 0; d < hs; d++) acc[d] += p * kern::to_float(v[d]);
  }
  floatX* o = out + ((size_t)b * T + t) * C + h * hs;
  for (int d = 0; d < hs; d++) o[d] = kern::from_float<floatX>(acc[d]);
}

// ---- version 3: cuDNN SDPA (frontend) ---------------------------------------------------------------------
#if DEV_HAVE_CUDNN
namespace fe = cudnn_frontend;
struct CudnnSdpa {
  cudnnHandle_t handle = nullptr;
  std::shared_ptr<fe::graph::Graph> fwd, bwd;
  std::shared_ptr<fe::graph::Tensor_attributes> Q, K, V, O, S, scale_t;                   // forward
  std::shared_ptr<fe::graph::Tensor_attributes> bQ, bK, bV, bO, bdO, bS, bscale, dQ, dK, dV;  // backward
  void* ws = nullptr;
  bool ok = false;
};
// qkv (B,T,3,NH,hs) read in place through strides; out (B,T,NH,hs); stats (B,NH,T,1) fp32.
template <typename T>
bool cudnn_build(CudnnSdpa& g, int B, int Tn, int C, int NH) {
  const int64_t hs = C / NH, b = B, h = NH, t = Tn;
  const std::vector<int64_t> qkv_dim = {b, h, t, hs}, qkv_stride = {t * 3 * h * hs, hs, 3 * h * hs, 1};
  const std::vector<int64_t> o_stride = {t * h * hs, hs, h * hs, 1};
  const auto dtype = std::is_same<T, float>::value ? fe::DataType_t::FLOAT : fe::DataType_t::BFLOAT16;
  if (cudnnCreate(&g.handle) != CUDNN_STATUS_SUCCESS) return false;
  auto make_graph = [&] {
    auto gr = std::make_shared<fe::graph::Graph>();
    gr->set_io_data_type(dtype).set_intermediate_data_type(fe::DataType_t::FLOAT).set_compute_data_type(
        fe::DataType_t::FLOAT);
    return gr;
  };
  auto tensor = [&](std::shared_ptr<fe::graph::Graph>& gr, const char* name, const std::vector<int64_t>& stride) {
    return gr->tensor(fe::graph::Tensor_attributes().set_name(name).set_dim(qkv_dim).set_stride(stride));
  };
  auto scale = [&](std::shared_ptr<fe::graph::Graph>& gr) {
    return gr->tensor(fe::graph::Tensor_attributes().set_name("scale").set_dim({1, 1, 1, 1}).set_stride({1, 1, 1, 1})
                          .set_is_pass_by_value(true).set_data_type(fe::DataType_t::FLOAT));
  };
  // forward
  g.fwd = make_graph();
  g.Q = tensor(g.fwd, "Q", qkv_stride);
  g.K = tensor(g.fwd, "K", qkv_stride);
  g.V = tensor(g.fwd, "V", qkv_stride);
  g.scale_t = scale(g.fwd);
  auto fopt = fe::graph::SDPA_attributes().set_name("sdpa").set_is_inference(false).set_causal_mask(true)
                  .set_attn_scale(g.scale_t);
  auto [O, S] = g.fwd->sdpa(g.Q, g.K, g.V, fopt);
  O->set_output(true).set_dim(qkv_dim).set_stride(o_stride);
  S->set_output(true).set_data_type(fe::DataType_t::FLOAT);
  g.O = O;
  g.S = S;
  // backward
  g.bwd = make_graph();
  g.bQ = tensor(g.bwd, "Q", qkv_stride);
  g.bK = tensor(g.bwd, "K", qkv_stride);
  g.bV = tensor(g.bwd, "V", qkv_stride);
  g.bO = tensor(g.bwd, "O", o_stride);
  g.bdO = tensor(g.bwd, "dO", o_stride);
  g.bS = g.bwd->tensor(fe::graph::Tensor_attributes().set_name("stats").set_dim({b, h, t, 1}).set_stride(
      {h * t, t, 1, 1}).set_data_type(fe::DataType_t::FLOAT));
  g.bscale = scale(g.bwd);
  auto bopt = fe::graph::SDPA_backward_attributes().set_name("sdpa_bwd").set_causal_mask(true).set_attn_scale(
      g.bscale);
  auto [dQ, dK, dV] = g.bwd->sdpa_backward(g.bQ, g.bK, g.bV, g.bO, g.bdO, g.bS, bopt);
  dQ->set_output(true).set_dim(qkv_dim).set_stride(qkv_stride);
  dK->set_output(true).set_dim(qkv_dim).set_stride(qkv_stride);
  dV->set_output(true).set_dim(qkv_dim).set_stride(qkv_stride);
  g.dQ = dQ;
  g.dK = dK;
  g.dV = dV;
  for (auto* gr : {&g.fwd, &g.bwd}) {
    if (!(*gr)->validate().is_good()) return false;
    if (!(*gr)->build_operation_graph(g.handle).is_good()) return false;
    if (!(*gr)->create_execution_plans({fe::HeurMode_t::A}).is_good()) return false;
    if (!(*gr)->check_support(g.handle).is_good()) return false;
    if (!(*gr)->build_plans(g.handle).is_good()) return false;
  }
  int64_t ws = std::max(g.fwd->get_workspace_size(), g.bwd->get_workspace_size());
  if (ws > 0 && cudaMalloc(&g.ws, ws) != cudaSuccess) return false;
  g.ok = true;
  return true;
}
#endif

// ---- harness ----------------------------------------------------------------------------------------------
namespace {

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}
std::vector<float> part(const std::vector<float>& qkv, int B, int T, int C, int which) {
  std::vector<float> r((size_t)B * T * C);
  for (size_t bt = 0; bt < (size_t)B * T; bt++)
    for (int c = 0; c < C; c++) r[bt * C + c] = qkv[bt * 3 * C + (size_t)which * C + c];
  return r;
}
double peak_tflops(bool bf16) {
  if (!dev::kTiming) return 0.0;
  cudaDeviceProp p;
  CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  if (p.major == 9) return bf16 ? 989.0 : 67.0;
  if (p.major == 8 && p.minor == 0) return bf16 ? 312.0 : 19.5;
  return 0.0;
}

// Copy the q, k or v third out of a device dqkv (B,T,3C) into a host (B,T,C) vector.
template <typename T>
std::vector<float> device_part(const T* d, int B, int Tn, int C, int which) {
  return part(dev::from_device(d, (size_t)B * Tn * 3 * C), B, Tn, C, which);
}

// Versions 1-2 must pass dev::validate_result (exits on failure). cuDNN (v3) is the speed reference: its errors
// (it feeds bf16 probabilities to the second matmul) are reported, not enforced.
template <typename T>
void check(int version, const T* d, const std::vector<float>& ref, const char* name, double term_scale) {
  if (version != 3) return dev::validate_result(d, ref, name, term_scale);
  const auto got = dev::from_device(d, ref.size());
  double max_err = 0;
  for (size_t i = 0; i < ref.size(); i++) max_err = std::max(max_err, (double)std::fabs(got[i] - ref[i]));
  std::printf("  cuDNN %-6s max abs err %.3e (term scale %.3e; reported only)\n", name, max_err, term_scale);
}

template <typename T>
int run(int version) {
  const bool gpu = dev::kTiming, bf16 = std::is_same<T, __nv_bfloat16>::value;
  const int B = gpu ? 8 : 1, Tn = gpu ? 1024 : 70, C = gpu ? 768 : 128, NH = gpu ? 12 : 2, hs = C / NH;
  std::printf("attention v%d %s  B=%d T=%d C=%d NH=%d\n", version, bf16 ? "bf16" : "fp32", B, Tn, C, NH);
  if (version == 1 && hs > 128) {
    std::printf("  v1 handles head sizes <= 128 only: skipped\n");
    return 0;
  }
  if (version == 3 && !DEV_HAVE_CUDNN) {
    std::printf("  v3 (cuDNN SDPA) not compiled in (needs nvcc, -DLLM_DEV_CUDNN and cudnn_frontend.h): skipped\n");
    return 0;
  }
  const size_t nqkv = (size_t)B * Tn * 3 * C, nout = (size_t)B * Tn * C, nlse = (size_t)B * NH * Tn;
  const auto qkv = dev::round_through<T>(dev::random_floats(nqkv, 1, -2.0f, 2.0f));
  const auto dout = dev::round_through<T>(dev::random_floats(nout, 2));
  llm::DropoutSpec drop;  // timing and cuDNN comparison without dropout (the tests cover dropout)
  std::vector<float> r_out(nout), r_att((size_t)B * NH * Tn * Tn), r_dqkv(nqkv, 0.0f);
  ref::attention_forward(r_out.data(), r_att.data(), qkv.data(), B, Tn, C, NH, drop);
  const double S_out = max_abs(part(qkv, B, Tn, C, 2));

  T *d_qkv = dev::to_device<T>(qkv), *d_out = dev::device_alloc<T>(nout), *d_dout = dev::to_device<T>(dout);
  T* d_dqkv = dev::device_alloc<T>(nqkv);
  float *d_lse = dev::device_alloc<float>(nlse), *d_scratch = dev::device_alloc<float>(nlse);
  const double fwd_flops = 4.0 * B * NH * hs * ((double)Tn * (Tn + 1) / 2), bwd_flops = 2.5 * fwd_flops;
  const double fwd_bytes = (double)(nqkv + nout) * sizeof(T), bwd_bytes = (double)(nqkv * 2 + nout * 2) * sizeof(T);
  const double peak = peak_tflops(bf16);
  const float scale = 1.0f / std::sqrt((float)hs);
  (void)scale;

#if DEV_HAVE_CUDNN
  CudnnSdpa g;
  T* d_dq = nullptr;  // cuDNN writes dq, dk, dv into one (B,T,3C) buffer through strides
  if (version == 3 && !cudnn_build<T>(g, B, Tn, C, NH)) {
    std::printf("  cuDNN could not build the SDPA graphs for this shape/precision: skipped\n");
    return 0;
  }
  auto cudnn_fwd = [&] {
    float sc = scale;
    std::unordered_map<std::shared_ptr<fe::graph::Tensor_attributes>, void*> pack = {
        {g.Q, d_qkv}, {g.K, d_qkv + C}, {g.V, d_qkv + 2 * C}, {g.O, d_out}, {g.S, d_lse}, {g.scale_t, &sc}};
    if (!g.fwd->execute(g.handle, pack, g.ws).is_good()) std::printf("  cuDNN forward failed\n");
  };
  auto cudnn_bwd = [&] {
    float sc = scale;
    std::unordered_map<std::shared_ptr<fe::graph::Tensor_attributes>, void*> pack = {
        {g.bQ, d_qkv}, {g.bK, d_qkv + C}, {g.bV, d_qkv + 2 * C}, {g.bO, d_out}, {g.bdO, d_dout}, {g.bS, d_lse},
        {g.bscale, &sc}, {g.dQ, d_dqkv}, {g.dK, d_dqkv + C}, {g.dV, d_dqkv + 2 * C}};
    if (!g.bwd->execute(g.handle, pack, g.ws).is_good()) std::printf("  cuDNN backward failed\n");
  };
  (void)d_dq;
#endif

  auto forward = [&](int block) {
    if (version == 1) {
      launch_kernel(attention_naive_kernel<T>, dim3((B * NH * Tn + block - 1) / block), dim3(block), 0, 0, d_out,
                    (const T*)d_qkv, B, Tn, C, NH);
    } else if (version == 2) {
      kern::attention_forward<T>(d_out, d_lse, d_qkv, B, Tn, C, NH, drop, 0);
    } else {
#if DEV_HAVE_CUDNN
      cudnn_fwd();
#endif
    }
  };
  auto backward = [&] {
    if (version == 2) kern::attention_backward<T>(d_dqkv, d_scratch, d_dout, d_qkv, d_lse, B, Tn, C, NH, drop, 0);
#if DEV_HAVE_CUDNN
    if (version == 3) cudnn_bwd();
#endif
  };
  const std::vector<int> blocks = version == 1 ? std::vector<int>{64, 128, 256} : std::vector<int>{hs > 64 ? 32 : 64};
  for (int block : blocks) {
    CUDA_CHECK(cudaMemset(d_out, 0xFF, nout * sizeof(T)));
    forward(block);
    CUDA_CHECK(cudaDeviceSynchronize());
    check(version, d_out, r_out, "out", S_out);
  }
  if (version >= 2) {
    ref::attention_backward(r_dqkv.data(), dout.data(), qkv.data(), r_att.data(), B, Tn, C, NH, drop);
    backward();
    CUDA_CHECK(cudaDeviceSynchronize());
    const auto got = dev::from_device(d_dqkv, nqkv);
    const char* names[3] = {"dq", "dk", "dv"};
    for (int which = 0; which < 3; which++) {
      const auto r = part(r_dqkv, B, Tn, C, which);
      const auto gpart = part(got, B, Tn, C, which);
      T* tmp = dev::to_device<T>(gpart);  // validate_result reads from the device
      check(version, (const T*)tmp, r, names[which], max_abs(r));
      cudaFree(tmp);
    }
  }
  const int repeats = version == 1 ? 2 : 10;
  for (int block : blocks) {
    const float ms = dev::benchmark_kernel(repeats, [&] { forward(block); });
    dev::print_timing(version == 3 ? "attention fwd cudnn" : "attention fwd", block, ms, fwd_bytes, fwd_flops, peak);
  }
  if (version >= 2) {
    const float ms = dev::benchmark_kernel(repeats, backward);
    dev::print_timing(version == 3 ? "attention bwd cudnn" : "attention bwd", blocks[0], ms, bwd_bytes, bwd_flops,
                      peak);
  }
  cudaFree(d_qkv);
  cudaFree(d_out);
  cudaFree(d_dout);
  cudaFree(d_dqkv);
  cudaFree(d_lse);
  cudaFree(d_scratch);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dev::lab_main(argc, argv, 3, 2, [](auto zero, int version) {
    using T = decltype(zero);
    return run<T>(version);
  });
}
