// comm_mpi.h — the MPI backend of llm::Comm (host memory), and the choice of backend for the CPU programs.
//
// Why MPI on the CPU: `mpirun -np N build/gpt2_cpu train ...` is the standard way to start N processes on one
// or many machines, and MPI's collectives are exactly the ones the trainer needs. This file is built into the
// small library llm_comm, which links libmpi only when CMake found MPI (then LLM_WITH_MPI is defined);
// without MPI, make_host_comm still works for one process and says why it cannot do more.
#pragma once
#include <memory>

#include "host/comm.h"
#include "host/rank_env.h"

namespace llm {

#ifdef LLM_WITH_MPI
#include <mpi.h>
// MPI_COMM_WORLD. The first MpiComm calls MPI_Init; MPI_Finalize runs when it is destroyed normally (not while
// an exception unwinds: the other ranks may be waiting in a collective, see abort_other_ranks). Host buffers only.
class MpiComm final : public Comm {
 public:
  MpiComm();
  ~MpiComm() override;
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  void all_reduce_sum(void* buf, size_t n, CommType type, void* stream) override;
  void reduce_scatter_sum(void* buf, size_t n, CommType type, void* stream) override;
  void all_gather(void* buf, size_t n, CommType type, void* stream) override;
  double all_reduce_sum_host(double x) override;
  void broadcast_host(void* buf, size_t bytes, int root) override;
  void barrier() override;
  void set_timeout(double seconds) override { timeout_s_ = seconds; }

 private:
  // Completes a nonblocking collective: MPI_Test with a backoff to short sleeps (no 100 % CPU spin while another
  // rank is slow); past timeout_s_ prints "error: ..." and MPI_Abort()s every rank.
  void wait(MPI_Request* req, const char* what);
  int rank_ = 0, world_ = 1;
  double timeout_s_ = 0;
};
#endif

// World 1: LocalComm. Under mpirun: MpiComm (checked against the launch environment). World > 1 otherwise (a
// build without MPI, or a torchrun-style environment): llm::Error saying to use mpirun / the NCCL trainer.
std::unique_ptr<Comm> make_host_comm(const RankEnv& env);

// After an error on one rank of a multi-process MPI run: MPI_Abort(exit_code), so that mpirun stops every rank
// instead of leaving the others blocked in a collective. Returns (does nothing) in a single process.
void abort_other_ranks(int exit_code);

}  // namespace llm
