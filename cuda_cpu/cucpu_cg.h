// cucpu_cg.h — the cooperative_groups subset kernels may use, on the CPU layer.
//
// Why: CUDA's <cooperative_groups.h> compiles to nothing under g++ (its body needs __CUDACC__), so the layer
// supplies its own: thread_block, this_thread_block(), thread_block_tile<N> / tiled_partition<N> (N <= 32, a
// power of two) with shuffles, votes and sync on the tile's lane segment, and cg::reduce with plus/less/
// greater (less = min, greater = max, as in CUDA). reduce is an xor butterfly: every lane gets the result;
// the summation order may differ from NVIDIA's, so compare sums with a tolerance.
// No grid/cluster groups: blocks run one after another, so nothing may wait for another block.
#pragma once
#include "cuda_cpu/cucpu.h"

namespace cooperative_groups {

class thread_block {
 public:
  void sync(CUCPU_LOC) const { cucpu::syncthreads(CUCPU_AT); }
  unsigned thread_rank() const { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
  unsigned size() const { return blockDim.x * blockDim.y * blockDim.z; }
  unsigned num_threads() const { return size(); }
  dim3 group_index() const { return dim3(blockIdx.x, blockIdx.y, blockIdx.z); }
  dim3 thread_index() const { return dim3(threadIdx.x, threadIdx.y, threadIdx.z); }
  dim3 group_dim() const { return blockDim; }
  dim3 dim_threads() const { return blockDim; }
};

inline thread_block this_thread_block() { return thread_block(); }
inline void sync(const thread_block& g, CUCPU_LOC) { g.sync(CUCPU_AT); }

template <unsigned N, class Parent = void>
class thread_block_tile {
  static_assert(N >= 1 && N <= 32 && (N & (N - 1)) == 0, "tile size must be a power of two <= 32");

 public:
  thread_block_tile() = default;
  template <class P2>
  thread_block_tile(const thread_block_tile<N, P2>&) {}  // a tile of any parent converts to <N, void>
  static constexpr unsigned num_threads() { return N; }
  static constexpr unsigned size() { return N; }
  unsigned thread_rank() const { return block_rank() % N; }
  unsigned meta_group_rank() const { return block_rank() / N; }
  unsigned meta_group_size() const {
    unsigned n = blockDim.x * blockDim.y * blockDim.z;
    return (n + N - 1) / N;
  }
  // lanes of this tile within the warp (only lanes that exist: a partial last warp has fewer)
  unsigned mask() const {
    unsigned lane = block_rank() % 32;
    unsigned seg = (N == 32) ? 0xffffffffu : (((1u << N) - 1u) << (lane / N * N));
    unsigned n = blockDim.x * blockDim.y * blockDim.z;
    unsigned warp_first = block_rank() / 32 * 32;
    unsigned in_warp = n - warp_first >= 32 ? 32 : n - warp_first;
    unsigned exists = in_warp == 32 ? 0xffffffffu : ((1u << in_warp) - 1u);
    return seg & exists;
  }
  void sync(CUCPU_LOC) const { cucpu::warp_op(cucpu::WarpOp::Sync, mask(), 0, 0, 32, CUCPU_AT); }
  template <class T>
  T shfl(T v, int src, CUCPU_LOC) const { return __shfl_sync(mask(), v, src, (int)N, CUCPU_AT); }
  template <class T>
  T shfl_down(T v, unsigned d, CUCPU_LOC) const { return __shfl_down_sync(mask(), v, d, (int)N, CUCPU_AT); }
  template <class T>
  T shfl_up(T v, unsigned d, CUCPU_LOC) const { return __shfl_up_sync(mask(), v, d, (int)N, CUCPU_AT); }
  template <class T>
  T shfl_xor(T v, unsigned m, CUCPU_LOC) const { return __shfl_xor_sync(mask(), v, (int)m, (int)N, CUCPU_AT); }
  // ballot bits are numbered by thread_rank within the tile
  unsigned ballot(int pred, CUCPU_LOC) const {
    unsigned b = __ballot_sync(mask(), pred, CUCPU_AT);
    return N == 32 ? b : (b >> (block_rank() % 32 / N * N)) & ((1u << N) - 1u);
  }
  bool any(int pred, CUCPU_LOC) const { return __ballot_sync(mask(), pred, CUCPU_AT) != 0; }
  bool all(int pred, CUCPU_LOC) const {
    unsigned m = mask();
    return __ballot_sync(m, pred, CUCPU_AT) == m;
  }

 private:
  static unsigned block_rank() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
};

template <unsigned N, class Parent>
inline thread_block_tile<N, Parent> tiled_partition(const Parent&) {
  return thread_block_tile<N, Parent>();
}

template <class T>
struct plus {
  T operator()(const T& a, const T& b) const { return a + b; }
};
template <class T>
struct less {  // reduce(less) gives the minimum
  T operator()(const T& a, const T& b) const { return b < a ? b : a; }
};
template <class T>
struct greater {  // reduce(greater) gives the maximum
  T operator()(const T& a, const T& b) const { return a < b ? b : a; }
};
template <class T>
struct bit_and {
  T operator()(const T& a, const T& b) const { return a & b; }
};
template <class T>
struct bit_or {
  T operator()(const T& a, const T& b) const { return a | b; }
};
template <class T>
struct bit_xor {
  T operator()(const T& a, const T& b) const { return a ^ b; }
};

template <unsigned N, class P, class T, class Op>
inline T reduce(const thread_block_tile<N, P>& tile, T v, Op op) {
  for (unsigned o = N / 2; o > 0; o /= 2) v = op(v, tile.shfl_xor(v, o));
  return v;
}

}  // namespace cooperative_groups
