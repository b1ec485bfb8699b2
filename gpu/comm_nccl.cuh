// comm_nccl.cuh — llm::Comm over NCCL: the GPU trainer's gradient collectives across GPUs and nodes.
//
// Why NCCL: gradients live in device memory and the collectives must run on a CUDA stream (so they overlap
// with backward and order against the optimizer with events, never with host syncs); NCCL does that over
// NVLink / PCIe / InfiniBand. Only the nvcc build has it (the CUDA-on-CPU build uses the MPI backend, since its
// "device" memory is host memory).
//
// Start-up: every rank must hold the same ncclUniqueId (made by rank 0). Under `mpirun` it goes out with
// MPI (the host MPI backend's broadcast_host); under a torchrun-style environment over TCP
// (tcp_broadcast_from_rank0 at MASTER_ADDR:MASTER_PORT, with a deadline). Then ncclCommInitRank.
// Layouts follow host/comm.h: reduce_scatter / all_gather work in place on an EVEN buffer (n % world == 0),
// rank r's shard being [r·n/world, (r+1)·n/world) — exactly NCCL's in-place convention
// (recvbuff = sendbuff + rank·recvcount for ReduceScatter, sendbuff = recvbuff + rank·sendcount for AllGather).
// Every NCCL call is checked: a failure names the call, the NCCL error text and this rank, then aborts (like
// CUDA_CHECK: a failing collective is not bad input and the other ranks cannot continue anyway).
#pragma once
#ifdef __CUDACC__
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "cuda_cpu/compat.cuh"
#include "host/collective_watchdog.h"
#include "host/comm.h"
#include "host/error.h"
#include "host/rank_env.h"

namespace gpu {

inline void nccl_check(ncclResult_t r, const char* expr, const char* file, int line, int rank) {
  if (r == ncclSuccess) return;
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s:%d: NCCL call %s failed on rank %d: %s (%s)\n", file, line, expr, rank,
               ncclGetErrorString(r), ncclGetLastError(nullptr));
  std::fflush(stderr);
  std::abort();
}
#define NCCL_CHECK(expr) ::gpu::nccl_check((expr), #expr, __FILE__, __LINE__, rank_)

class NcclComm final : public llm::Comm {
 public:
  // env: this process's rank/world (host/rank_env.h). host: a host backend for the id exchange under mpirun
  // (MpiComm; nullptr under torchrun env, where the id goes over TCP). The device (cudaSetDevice) must already
  // be chosen. rendezvous_timeout_s: how long the TCP exchange waits for the other ranks.
  NcclComm(const llm::RankEnv& env, llm::Comm* host, double rendezvous_timeout_s)
      : rank_(env.rank), world_(env.world) {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    if (env.launcher == llm::RankEnv::Launcher::kMpi) {
      if (!host) llm::fail("NCCL start-up under mpirun needs the MPI host backend (build with MPI)");
      host->broadcast_host(&id, sizeof(id), 0);
    } else if (world_ > 1) {
      const std::string blob = llm::tcp_broadcast_from_rank0(
          env, std::string(reinterpret_cast<const char*>(&id), sizeof(id)), rendezvous_timeout_s);
      if (blob.size() != sizeof(id))
        llm::fail("rendezvous at ", env.master_addr, ":", env.master_port, " delivered ", blob.size(),
                  " bytes instead of an NCCL unique id (", sizeof(id), " bytes)");
      std::memcpy(&id, blob.data(), sizeof(id));
    }
    NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&host_stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc(&scratch_, kScratchBytes));
  }
  ~NcclComm() override {
    watchdog_.stop();
    if (scratch_) (void)cudaFree(scratch_);
    if (host_stream_) (void)cudaStreamDestroy(host_stream_);
    // unwinding after an error: the other ranks may never reach a collective again, so do not wait for them
    if (comm_) (void)(std::uncaught_exceptions() ? ncclCommAbort(comm_) : ncclCommDestroy(comm_));
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  // --collective-timeout: NCCL waits on the GPU, so a watchdog thread ends this rank (ncclCommAbort, exit 2) when
  // no host-synchronous collective (several per step) has completed for that long (host/collective_watchdog.h).
  void set_timeout(double seconds) override {
    if (world_ > 1 && seconds > 0) watchdog_.start(seconds, rank_, [this] { (void)ncclCommAbort(comm_); });
  }

  void all_reduce_sum(void* buf, size_t n, llm::CommType type, void* stream) override {
    if (!n) return;
    NCCL_CHECK(ncclAllReduce(buf, buf, n, dtype(type), ncclSum, comm_, (cudaStream_t)stream));
  }
  void reduce_scatter_sum(void* buf, size_t n, llm::CommType type, void* stream) override {
    check_even("reduce_scatter_sum", n);
    if (!n) return;
    const size_t count = n / world_;
    char* own = static_cast<char*>(buf) + (size_t)rank_ * count * elem_bytes(type);
    NCCL_CHECK(ncclReduceScatter(buf, own, count, dtype(type), ncclSum, comm_, (cudaStream_t)stream));
  }
  void all_gather(void* buf, size_t n, llm::CommType type, void* stream) override {
    check_even("all_gather", n);
    if (!n) return;
    const size_t count = n / world_;
    const char* own = static_cast<const char*>(buf) + (size_t)rank_ * count * elem_bytes(type);
    NCCL_CHECK(ncclAllGather(own, buf, count, dtype(type), comm_, (cudaStream_t)stream));
  }
  // Host scalar through an 8-byte device buffer (fp64 sum; same bits on every rank).
  double all_reduce_sum_host(double x) override {
    CUDA_CHECK(cudaMemcpyAsync(scratch_, &x, sizeof(x), cudaMemcpyHostToDevice, host_stream_));
    NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclFloat64, ncclSum, comm_, host_stream_));
    CUDA_CHECK(cudaMemcpyAsync(&x, scratch_, sizeof(x), cudaMemcpyDeviceToHost, host_stream_));
    CUDA_CHECK(cudaStreamSynchronize(host_stream_));
    watchdog_.progress();
    return x;
  }
  // Host bytes through the device scratch buffer, in pieces of kScratchBytes.
  void broadcast_host(void* buf, size_t bytes, int root) override {
    for (size_t off = 0; off < bytes; off += kScratchBytes) {
      const size_t piece = bytes - off < kScratchBytes ? bytes - off : kScratchBytes;
      char* p = static_cast<char*>(buf) + off;
      if (rank_ == root) CUDA_CHECK(cudaMemcpyAsync(scratch_, p, piece, cudaMemcpyHostToDevice, host_stream_));
      NCCL_CHECK(ncclBroadcast(scratch_, scratch_, piece, ncclUint8, root, comm_, host_stream_));
      CUDA_CHECK(cudaMemcpyAsync(p, scratch_, piece, cudaMemcpyDeviceToHost, host_stream_));
      CUDA_CHECK(cudaStreamSynchronize(host_stream_));
      watchdog_.progress();
    }
  }
  void barrier() override { (void)all_reduce_sum_host(0.0); }

 private:
  static constexpr size_t kScratchBytes = 1 << 20;
  static ncclDataType_t dtype(llm::CommType t) { return t == llm::CommType::kBf16 ? ncclBfloat16 : ncclFloat32; }
  static size_t elem_bytes(llm::CommType t) { return t == llm::CommType::kBf16 ? 2 : 4; }
  void check_even(const char* what, size_t n) const {
    if (n % (size_t)world_ != 0) {
      std::fprintf(stderr, "error: NcclComm::%s: %zu elements do not split evenly over %d ranks (pad the buffer)\n",
                   what, n, world_);
      std::abort();
    }
  }

  int rank_ = 0, world_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t host_stream_ = nullptr;  // host-scalar / broadcast traffic, off the training stream
  void* scratch_ = nullptr;
  llm::CollectiveWatchdog watchdog_;
};

#undef NCCL_CHECK
}  // namespace gpu
#endif  // __CUDACC__
