// comm.h — the data-parallel communication interface of the trainers (header only).
//
// Why an interface: the training loop is written once against these few collectives; a single process uses
// LocalComm (every collective is the identity), and the multi-GPU / multi-node backends (NCCL on the GPU, MPI
// on the CPU) slot in behind the same calls without touching the loop:
//   ZeRO-0: all_reduce_sum(grads) after the last micro-step, scale by 1/world, every rank updates everything.
//   ZeRO-1: reduce_scatter_sum(grads) -> each rank updates only its shard [shard_begin, shard_end) of the
//           parameters / AdamW state, then all_gather(params) gives everyone the new weights.
// Buffers live wherever the backend computes (device memory for the GPU trainer, host memory for gpt2_cpu);
// the element type is passed explicitly (kBf16 = __nv_bfloat16's bit layout in uint16 storage; sums of bf16
// are formed in fp32 and rounded to nearest even). Scalars (loss, val loss) go through all_reduce_sum_host.
// ZeRO-1 shards are EVEN: a reduce-scattered / all-gathered buffer has n % world == 0 (owners pad their buffers
// to padded(n, world) with zeros); rank r owns [r·n/world, (r+1)·n/world).
// Backends: LocalComm (here), MpiComm (host/comm_mpi.h, CPU), NcclComm (gpu/comm_nccl.cuh).
#pragma once
#include <cstddef>
#include <cstdint>

namespace llm {

enum class CommType { kFp32, kBf16 };

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place: buf (n elements) becomes the element-wise sum over ranks. `stream` is a cudaStream_t or nullptr.
  virtual void all_reduce_sum(void* buf, size_t n, CommType type, void* stream) = 0;
  // In place on a buffer of n elements (n % world == 0): this rank's shard [shard_begin(n), shard_end(n))
  // becomes the sum over ranks; the rest of buf is unspecified afterwards.
  virtual void reduce_scatter_sum(void* buf, size_t n, CommType type, void* stream) = 0;
  // In place: every rank's shard of buf (layout as above) is copied to every other rank.
  virtual void all_gather(void* buf, size_t n, CommType type, void* stream) = 0;
  // Host scalars, e.g. the mean loss: returns the sum of x over ranks (the same bits on every rank).
  virtual double all_reduce_sum_host(double x) = 0;
  // Host bytes: every rank's buf becomes root's buf (e.g. an NCCL unique id).
  virtual void broadcast_host(void* buf, size_t bytes, int root) = 0;
  // Returns when every rank has called it.
  virtual void barrier() = 0;
  // A collective that waits longer than this for the other ranks ends every rank with a message (a stopped or
  // hung rank must not leave the others spinning forever). <= 0: wait forever. Backends without it ignore it.
  virtual void set_timeout(double /*seconds*/) {}

  // n rounded up to a multiple of world: the size of a buffer that is reduce-scattered / all-gathered.
  static size_t padded(size_t n, int world) { return (n + world - 1) / world * world; }
  // The shard of a padded buffer of n elements (n % world == 0) this rank owns under ZeRO-1.
  size_t shard_begin(size_t n) const { return n / world_size() * rank(); }
  size_t shard_end(size_t n) const { return n / world_size() * (rank() + 1); }
};

// One process, one device: every collective is the identity.
class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(void*, size_t, CommType, void*) override {}
  void reduce_scatter_sum(void*, size_t, CommType, void*) override {}
  void all_gather(void*, size_t, CommType, void*) override {}
  double all_reduce_sum_host(double x) override { return x; }
  void broadcast_host(void*, size_t, int) override {}
  void barrier() override {}
};

}  // namespace llm
