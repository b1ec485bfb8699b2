// step_graph.cuh — the pieces of a training step captured into CUDA graphs once and replayed afterwards.
//
// Why: a GPT-2 step is hundreds of small launches; issuing them one by one costs host time per step and lets the
// host's jitter into the step time. The step's device work (gpu/gpt2_gpu.cuh forward_queued/backward,
// gpu/gpt2_params.cuh update_queued) runs on one stream with no host synchronisation and reads every per-step value
// from device memory, so each piece is captured once and replayed. Each piece has a key (what its launches depend
// on: e.g. the last micro-step all-reduces); a key runs eagerly the first time (warm-up: library handles, cuBLASLt
// and cuDNN plans, workspaces are made then, outside any capture), is captured the second time and replayed from
// then on. A capture that CUDA refuses (cudaStreamEndCapture or cudaGraphInstantiate fails) switches the graphs off
// with one message and the piece runs eagerly — the captured work never ran, so nothing is done twice. On the
// CUDA-on-CPU layer the capture rules are checked (cuda_cpu/cucpu_graph.cpp): a synchronisation, a pageable copy
// or a legacy-stream call inside a captured piece fails there as on a GPU.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "cuda_cpu/compat.cuh"

namespace gpu {

class StepGraphs {
 public:
  // off_reason: why graphs cannot be used for this run ("" = they can); enabled: --cuda-graph.
  StepGraphs(cudaStream_t stream, bool enabled, std::string off_reason)
      : stream_(stream), on_(enabled && off_reason.empty()), why_off_(enabled ? off_reason : "--no-cuda-graph") {}
  ~StepGraphs() { clear(); }
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Queues fn's work on the stream: eagerly, or by capturing/replaying its graph (see the top).
  template <class Fn>
  void run(uint64_t key, Fn&& fn) {
    if (!on_) return fn();
    Piece& piece = pieces_[key];
    if (piece.exec) {
      CUDA_CHECK(cudaGraphLaunch(piece.exec, stream_));
      replays_++;
      return;
    }
    if (piece.calls++ == 0) return fn();  // warm-up
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
    fn();
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (e == cudaSuccess) {
      CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &piece.nodes));
      e = cudaGraphInstantiate(&piece.exec, graph, 0);
      CUDA_CHECK(cudaGraphDestroy(graph));
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      why_off_ = std::string("capture failed: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
      std::fprintf(stderr, "warning: cuda graph: %s; the step runs without graphs\n", why_off_.c_str());
      clear();
      on_ = false;
      return fn();
    }
    CUDA_CHECK(cudaGraphLaunch(piece.exec, stream_));
    replays_++;
  }

  bool on() const { return on_; }
  // "on: 3 graphs (1234 nodes), 57 launches" or "off (<reason>)".
  std::string status() const {
    if (!on_) return "off (" + why_off_ + ")";
    size_t graphs = 0, nodes = 0;
    for (const auto& kv : pieces_)
      if (kv.second.exec) {
        graphs++;
        nodes += kv.second.nodes;
      }
    return "on: " + std::to_string(graphs) + " graphs (" + std::to_string(nodes) + " nodes), " +
           std::to_string(replays_) + " launches";
  }

 private:
  struct Piece {
    int calls = 0;
    size_t nodes = 0;
    cudaGraphExec_t exec = nullptr;
  };
  void clear() {
    for (auto& kv : pieces_)
      if (kv.second.exec) (void)cudaGraphExecDestroy(kv.second.exec);
    pieces_.clear();
  }

  cudaStream_t stream_;
  bool on_;
  std::string why_off_;
  std::map<uint64_t, Piece> pieces_;
  uint64_t replays_ = 0;
};

}  // namespace gpu
