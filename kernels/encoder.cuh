// encoder.cuh — token + position embedding, forward and backward.
//
// Why: forward is a gather, one thread per 16-byte chunk of (b, t, c). Backward is a scatter-add into dwte
// (the same token can appear many times in a batch), which on a GPU is normally done with float atomics and
// is then NOT deterministic. Here it is deterministic without atomics:
// * dwte: the host (which has the token ids anyway) groups the B·T positions by token id — one bucket per
//   distinct token, positions in increasing order — and uploads that plan to a small int scratch. One block
//   row per bucket (largest buckets first for load balance), each thread owns a channel chunk and sums the
//   bucket's dout rows in position order in fp32, then adds once into dwte[token].
// * dwpe: one thread per (t, channel chunk) sums over b in order.
// Both add into the existing gradient (+=), like ref::encoder_backward.
#pragma once
#include "kernels/common.cuh"

#include <algorithm>
#include <vector>

namespace kern {

// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]. One thread per chunk of VEC channels; VEC | C. Token ids must be valid
// rows of wte (the data loader validates them; a kernel cannot report bad input).
template <class T, int VEC>
__global__ void encoder_forward_kernel(T* out, const int* inp, const T* wte, const T* wpe, int B, int Tn, int C) {
  const size_t idx = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (idx >= (size_t)B * Tn * C) return;
  const size_t bt = idx / C;
  const int c = (int)(idx % C), t = (int)(bt % Tn);
  const Packed<T, VEC> tok = load_packed<VEC>(wte + (size_t)inp[bt] * C + c);
  const Packed<T, VEC> pos = load_packed<VEC>(wpe + (size_t)t * C + c);
  Packed<T, VEC> r;
  for (int k = 0; k < VEC; k++) r[k] = from_float<T>(to_float(tok[k]) + to_float(pos[k]));
  store_packed<VEC>(out + idx, r);
}

// dwpe[t,c] += Σ_b dout[b,t,c], b in order. One thread per chunk of (t, c).
template <class T, int VEC>
__global__ void wpe_backward_kernel(T* dwpe, const T* dout, int B, int Tn, int C) {
  const size_t idx = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (idx >= (size_t)Tn * C) return;
  float sum[VEC];
  for (int k = 0; k < VEC; k++) sum[k] = 0.0f;
  for (int b = 0; b < B; b++) {
    const Packed<T, VEC> d = load_packed<VEC>(dout + (size_t)b * Tn * C + idx);
    for (int k = 0; k < VEC; k++) sum[k] += to_float(d[k]);
  }
  Packed<T, VEC> g = load_packed<VEC>(dwpe + idx);
  for (int k = 0; k < VEC; k++) g[k] = from_float<T>(to_float(g[k]) + sum[k]);
  store_packed<VEC>(dwpe + idx, g);
}

// The bucket plan in the int scratch (BT = B·T):
//   positions[BT]        (b·T + t) grouped by token, increasing within a bucket
//   bucket_start[nb + 1] offsets into positions
//   bucket_token[nb]     the token id of each bucket
// Bucket i is handled by blockIdx.x == i; blockIdx.y·blockDim.x + threadIdx.x is the channel chunk. The plan's zero
// fill makes every block past the last bucket see an empty range, so a launch may have B·T blocks in x (the most
// buckets a batch can have) and not depend on the batch: a CUDA graph can replay it with a new plan.
template <class T, int VEC>
__global__ void wte_backward_kernel(T* dwte, const T* dout, const int* positions, const int* bucket_start,
                                   const int* bucket_token, int C) {
  const int c = (blockIdx.y * blockDim.x + threadIdx.x) * VEC;
  if (c >= C) return;
  const int begin = bucket_start[blockIdx.x], end = bucket_start[blockIdx.x + 1];
  if (begin >= end) return;  // past the last bucket (a launch sized for the most buckets a batch can have)
  float sum[VEC];
  for (int k = 0; k < VEC; k++) sum[k] = 0.0f;
  for (int j = begin; j < end; j++) {
    const Packed<T, VEC> d = load_packed<VEC>(dout + (size_t)positions[j] * C + c);
    for (int k = 0; k < VEC; k++) sum[k] += to_float(d[k]);
  }
  T* row = dwte + (size_t)bucket_token[blockIdx.x] * C + c;
  Packed<T, VEC> g = load_packed<VEC>(row);
  for (int k = 0; k < VEC; k++) g[k] = from_float<T>(to_float(g[k]) + sum[k]);
  store_packed<VEC>(row, g);
}

// ---------------------------------------------------------------------------------------------------------
// Launchers.

template <class T>
void encoder_forward(T* out, const int* inp, const T* wte, const T* wpe, int B, int Tn, int C, cudaStream_t stream,
                     int block_size = 256) {
  const size_t n = (size_t)B * Tn * C;
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(C, {out, wte, wpe}))
    launch_kernel(encoder_forward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0, stream,
                  out, inp, wte, wpe, B, Tn, C);
  else
    launch_kernel(encoder_forward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream,
                  out, inp, wte, wpe, B, Tn, C);
  CUDA_CHECK(cudaGetLastError());
}

// Ints of device scratch encoder_backward needs.
inline size_t encoder_backward_scratch_ints(int B, int Tn) { return (size_t)3 * B * Tn + 1; }

// Host side of the dwte plan: fills `plan` (encoder_backward_scratch_ints ints, layout above), returns the
// number of buckets. Buckets are ordered largest first (ties: smaller token first), so the plan is a pure
// function of the token ids.
inline int encoder_backward_plan(int* plan, const int* inp_host, int B, int Tn) {
  // Two counting sorts, O(B·T + the largest id) (the trainer plans every micro-batch on the host): positions by
  // token id keep their order inside a bucket; buckets by size, descending, keep token order among equal sizes.
  const int BT = B * Tn;
  int max_tok = 0;
  for (int j = 0; j < BT; j++) max_tok = std::max(max_tok, inp_host[j]);
  std::vector<int> count(max_tok + 1, 0);
  for (int j = 0; j < BT; j++) count[inp_host[j]]++;
  std::vector<int> tokens;  // buckets in token order
  int max_size = 0;
  for (int t = 0; t <= max_tok; t++)
    if (count[t]) {
      tokens.push_back(t);
      max_size = std::max(max_size, count[t]);
    }
  const int nb = (int)tokens.size();
  std::vector<int> first(max_size + 2, 0), by_size(nb);  // key max_size - size: ascending key = descending size
  for (int t : tokens) first[max_size - count[t] + 1]++;
  for (int k = 1; k <= max_size + 1; k++) first[k] += first[k - 1];
  for (int i = 0; i < nb; i++) by_size[first[max_size - count[tokens[i]]]++] = tokens[i];
  std::fill(plan, plan + encoder_backward_scratch_ints(B, Tn), 0);
  int* positions = plan;
  int* bucket_start = plan + BT;
  int* bucket_token = plan + 2 * BT + 1;
  std::vector<int> next(max_tok + 1, 0);  // where the token's next position goes
  int pos = 0;
  for (int i = 0; i < nb; i++) {
    bucket_start[i] = pos;
    bucket_token[i] = by_size[i];
    next[by_size[i]] = pos;
    pos += count[by_size[i]];
  }
  bucket_start[nb] = pos;
  for (int j = 0; j < BT; j++) positions[next[inp_host[j]]++] = j;
  return nb;
}
inline int encoder_backward_plan(std::vector<int>& plan, const int* inp_host, int B, int Tn) {
  plan.resize(encoder_backward_scratch_ints(B, Tn));
  return encoder_backward_plan(plan.data(), inp_host, B, Tn);
}

// dwte += scatter of dout by token, dwpe += Σ_b dout, from a plan (encoder_backward_plan) already in the device
// scratch. buckets: the grid's x extent, at least the plan's bucket count (B·T fits every plan).
template <class T>
void encoder_backward_planned(T* dwte, T* dwpe, const int* scratch, const T* dout, int B, int Tn, int C, int buckets,
                              cudaStream_t stream, int block_size = 256) {
  if (B * Tn == 0 || C == 0) return;
  constexpr int P = Packed128<T>::size;
  const bool packed = can_pack<T>(C, {dwte, dwpe, dout});
  const int vec = packed ? P : 1;

  // dwpe
  const size_t chunks = (size_t)Tn * C / vec;
  if (packed)
    launch_kernel(wpe_backward_kernel<T, P>, dim3(CEIL_DIV(chunks, (size_t)block_size)), dim3(block_size), 0, stream,
                  dwpe, dout, B, Tn, C);
  else
    launch_kernel(wpe_backward_kernel<T, 1>, dim3(CEIL_DIV(chunks, (size_t)block_size)), dim3(block_size), 0, stream,
                  dwpe, dout, B, Tn, C);
  CUDA_CHECK(cudaGetLastError());

  // dwte: one block row per bucket
  const int BT = B * Tn;
  int threads = CEIL_DIV(CEIL_DIV(C, vec), WARP_SIZE) * WARP_SIZE;
  threads = threads < block_size ? threads : block_size;
  const dim3 grid(buckets, CEIL_DIV(CEIL_DIV(C, vec), threads));
  if (packed)
    launch_kernel(wte_backward_kernel<T, P>, grid, dim3(threads), 0, stream, dwte, dout, scratch, scratch + BT,
                  scratch + 2 * BT + 1, C);
  else
    launch_kernel(wte_backward_kernel<T, 1>, grid, dim3(threads), 0, stream, dwte, dout, scratch, scratch + BT,
                  scratch + 2 * BT + 1, C);
  CUDA_CHECK(cudaGetLastError());
}

// The same, planning on the host: `inp_host` holds the token ids that are on the device, in host memory (the
// trainer has them there anyway). `scratch`: encoder_backward_scratch_ints(B, T) device ints.
template <class T>
void encoder_backward(T* dwte, T* dwpe, int* scratch, const T* dout, const int* inp_host, int B, int Tn, int C,
                      cudaStream_t stream, int block_size = 256) {
  if (B * Tn == 0 || C == 0) return;
  std::vector<int> plan;
  const int nb = encoder_backward_plan(plan, inp_host, B, Tn);
  CUDA_CHECK(cudaMemcpyAsync(scratch, plan.data(), plan.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
  // (a pageable source: cudaMemcpyAsync has finished reading it when it returns, so `plan` may be freed here)
  encoder_backward_planned(dwte, dwpe, scratch, dout, B, Tn, C, nb, stream, block_size);
}

}  // namespace kern
