// attention_cudnn.cu — the cuDNN SDPA path of kernels/attention_cudnn.cuh (see there for the layout and the rules).
//
// Why its own translation unit: cudnn_frontend is a large header-only library; kept here it is compiled once (by
// nvcc, sm_80 + sm_90, with -DLLM_CUDNN and the frontend's include dir: cmake/cudnn.cmake), and train_gpt2.cu
// stays as quick to rebuild as before. Only built where cuDNN and cudnn_frontend were found; never on the CPU layer.
#ifndef LLM_CUDNN
#error "kernels/attention_cudnn.cu is built only with -DLLM_CUDNN (cmake/cudnn.cmake)"
#endif
#ifndef CUDNN_FRONTEND_SKIP_JSON_LIB
#define CUDNN_FRONTEND_SKIP_JSON_LIB  // no graph serialisation needed; keeps the frontend's bundled json out
#endif
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>  // before cudnn_frontend, which uses std::strlen without including it
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>

#include "kernels/attention_cudnn.cuh"

#include <cudnn.h>
#include <cudnn_frontend.h>

namespace kern {
namespace {

namespace fe = cudnn_frontend;

// Tensor uids of the variant packs.
enum : int64_t { kUidQ = 1, kUidK, kUidV, kUidO, kUidStats, kUidDO, kUidDQ, kUidDK, kUidDV };

struct Shape {
  int64_t B, NH, T, HS;
  bool operator<(const Shape& o) const { return std::tie(B, NH, T, HS) < std::tie(o.B, o.NH, o.T, o.HS); }
};

// The process's cuDNN handle, the graph caches and one workspace grown to the largest graph's need (every graph
// runs on the model's one stream, so they can share it). Created on first use and never destroyed: it must
// outlive every model, and process exit releases it.
struct Context {
  cudnnHandle_t handle = nullptr;
  std::map<Shape, std::shared_ptr<fe::graph::Graph>> fwd, bwd;
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;

  static Context& get() {
    static Context* c = new Context();
    return *c;
  }

 private:
  Context() {
    const cudnnStatus_t s = cudnnCreate(&handle);
    if (s != CUDNN_STATUS_SUCCESS)
      llm::fail("cuDNN: cudnnCreate failed (", cudnnGetErrorString(s), "); is cuDNN 9 installed for this GPU?");
  }
};

[[noreturn]] void die(const char* what, const std::string& msg, const Shape& s) {
  std::fprintf(stderr, "cuDNN SDPA %s failed (B=%lld NH=%lld T=%lld HS=%lld): %s\n", what, (long long)s.B,
               (long long)s.NH, (long long)s.T, (long long)s.HS, msg.c_str());
  std::abort();
}

// A bf16 tensor {B, NH, T, HS} whose sequence rows are `row` elements apart (3C: a third of qkv; C: out / dout)
// and whose heads are HS apart inside a row.
fe::graph::Tensor_attributes bhtd(const char* name, int64_t uid, const Shape& s, int64_t row) {
  return fe::graph::Tensor_attributes()
      .set_name(name)
      .set_uid(uid)
      .set_dim({s.B, s.NH, s.T, s.HS})
      .set_stride({s.T * row, s.HS, row, 1})
      .set_data_type(fe::DataType_t::BFLOAT16);
}

// The softmax statistics (B, NH, T) fp32, contiguous.
fe::graph::Tensor_attributes stats_like(const Shape& s) {
  return fe::graph::Tensor_attributes()
      .set_name("stats")
      .set_uid(kUidStats)
      .set_dim({s.B, s.NH, s.T, 1})
      .set_stride({s.NH * s.T, s.T, 1, 1})
      .set_data_type(fe::DataType_t::FLOAT);
}

std::shared_ptr<fe::graph::Graph> new_graph() {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

// validate + heuristics + plan build. A graph cuDNN cannot run here is bad input (exit 2), not a crash.
void build(Context& ctx, fe::graph::Graph& g, const char* what, const Shape& s) {
  auto unsupported = [&](fe::error_object e) {
    llm::fail("cuDNN SDPA ", what, " graph for B=", s.B, " NH=", s.NH, " T=", s.T, " HS=", s.HS,
              " is not supported here: ", e.get_message(), " (use --attention flash or portable)");
  };
  fe::error_object valid = g.validate();
  if (!valid.is_good()) unsupported(valid);
  fe::error_object built = g.build(ctx.handle, {fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
  if (!built.is_good()) unsupported(built);
  int64_t bytes = 0;
  fe::error_object ws = g.get_workspace_size(bytes);
  if (!ws.is_good()) die(what, ws.get_message(), s);
  if (bytes > ctx.workspace_bytes) {  // cudaFree waits for the device: no graph still uses the old buffer
    if (ctx.workspace) CUDA_CHECK(cudaFree(ctx.workspace));
    CUDA_CHECK(cudaMalloc(&ctx.workspace, (size_t)bytes));
    ctx.workspace_bytes = bytes;
  }
}

float attn_scale(const Shape& s) { return 1.0f / std::sqrt((float)s.HS); }

fe::graph::Graph& forward_graph(Context& ctx, const Shape& s) {
  auto it = ctx.fwd.find(s);
  if (it != ctx.fwd.end()) return *it->second;
  auto g = new_graph();
  const int64_t C = s.NH * s.HS;
  auto q = g->tensor(bhtd("q", kUidQ, s, 3 * C));
  auto k = g->tensor(bhtd("k", kUidK, s, 3 * C));
  auto v = g->tensor(bhtd("v", kUidV, s, 3 * C));
  auto opts = fe::graph::SDPA_attributes()
                  .set_name("attention_forward")
                  .set_generate_stats(true)
                  .set_causal_mask(true)
                  .set_attn_scale(attn_scale(s));
  auto outs = g->sdpa(q, k, v, opts);  // [out, stats]
  const fe::graph::Tensor_attributes o = bhtd("o", kUidO, s, C), st = stats_like(s);
  outs[0]->set_output(true).set_uid(kUidO).set_dim(o.get_dim()).set_stride(o.get_stride());
  outs[1]->set_output(true).set_uid(kUidStats).set_dim(st.get_dim()).set_stride(st.get_stride())
      .set_data_type(fe::DataType_t::FLOAT);
  build(ctx, *g, "forward", s);
  return *ctx.fwd.emplace(s, g).first->second;
}

fe::graph::Graph& backward_graph(Context& ctx, const Shape& s) {
  auto it = ctx.bwd.find(s);
  if (it != ctx.bwd.end()) return *it->second;
  auto g = new_graph();
  const int64_t C = s.NH * s.HS;
  auto q = g->tensor(bhtd("q", kUidQ, s, 3 * C));
  auto k = g->tensor(bhtd("k", kUidK, s, 3 * C));
  auto v = g->tensor(bhtd("v", kUidV, s, 3 * C));
  auto o = g->tensor(bhtd("o", kUidO, s, C));
  auto dout = g->tensor(bhtd("do", kUidDO, s, C));
  auto stats = g->tensor(stats_like(s));
  auto opts = fe::graph::SDPA_backward_attributes()
                  .set_name("attention_backward")
                  .set_causal_mask(true)
                  .set_attn_scale(attn_scale(s))
                  .set_deterministic_algorithm(true);
  auto grads = g->sdpa_backward(q, k, v, o, dout, stats, opts);  // [dq, dk, dv]
  const int64_t uids[3] = {kUidDQ, kUidDK, kUidDV};
  const fe::graph::Tensor_attributes like = bhtd("dqkv", kUidDQ, s, 3 * C);
  for (int i = 0; i < 3; i++)
    grads[i]->set_output(true).set_uid(uids[i]).set_dim(like.get_dim()).set_stride(like.get_stride());
  build(ctx, *g, "backward", s);
  return *ctx.bwd.emplace(s, g).first->second;
}

Shape checked_shape(const char* what, int B, int T, int C, int NH) {
  if (B <= 0 || T <= 0 || !cudnn_attention_supported(C, NH, true))
    llm::fail(what, ": shape B=", B, " T=", T, " C=", C, " NH=", NH,
              " not supported (head size: a multiple of 8, at most 128)");
  return Shape{B, NH, T, C / NH};
}

void run(Context& ctx, fe::graph::Graph& g, std::unordered_map<int64_t, void*>& pack, cudaStream_t stream,
         const char* what, const Shape& s) {
  const cudnnStatus_t st = cudnnSetStream(ctx.handle, stream);
  if (st != CUDNN_STATUS_SUCCESS) die(what, std::string("cudnnSetStream: ") + cudnnGetErrorString(st), s);
  fe::error_object e = g.execute(ctx.handle, pack, ctx.workspace);
  if (!e.is_good()) die(what, e.get_message(), s);
}

}  // namespace

void cudnn_attention_forward_bf16(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int B, int T, int C,
                                  int NH, cudaStream_t stream) {
  const Shape s = checked_shape("cudnn_attention_forward", B, T, C, NH);
  Context& ctx = Context::get();
  fe::graph::Graph& g = forward_graph(ctx, s);
  std::unordered_map<int64_t, void*> pack = {{kUidQ, (void*)qkv},
                                             {kUidK, (void*)(qkv + C)},
                                             {kUidV, (void*)(qkv + 2 * C)},
                                             {kUidO, (void*)out},
                                             {kUidStats, (void*)lse}};
  run(ctx, g, pack, stream, "forward", s);
}

void cudnn_attention_backward_bf16(__nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                                   const __nv_bfloat16* out, const float* lse, int B, int T, int C, int NH,
                                   cudaStream_t stream) {
  const Shape s = checked_shape("cudnn_attention_backward", B, T, C, NH);
  Context& ctx = Context::get();
  fe::graph::Graph& g = backward_graph(ctx, s);
  std::unordered_map<int64_t, void*> pack = {{kUidQ, (void*)qkv},
                                             {kUidK, (void*)(qkv + C)},
                                             {kUidV, (void*)(qkv + 2 * C)},
                                             {kUidO, (void*)out},
                                             {kUidDO, (void*)dout},
                                             {kUidStats, (void*)lse},
                                             {kUidDQ, (void*)dqkv},
                                             {kUidDK, (void*)(dqkv + C)},
                                             {kUidDV, (void*)(dqkv + 2 * C)}};
  run(ctx, g, pack, stream, "backward", s);
}

}  // namespace kern
