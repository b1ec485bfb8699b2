// rank_env.h — who am I in a data-parallel run: rank, world size and how the processes were launched.
//
// Why here: both trainers start the same way. Under `mpirun -np N` Open MPI exports OMPI_COMM_WORLD_RANK/SIZE/
// LOCAL_RANK; torchrun-style launchers (torchrun, Slurm scripts, by hand) export RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT. Without either the program is a single process. A half-set or malformed launch
// environment is an llm::Error naming the variable, never a silent single-process run.
// Without MPI the processes still have to agree on something (the NCCL unique id): tcp_broadcast_from_rank0
// sends rank 0's bytes to everyone over TCP at MASTER_ADDR:MASTER_PORT, with a deadline instead of a hang.
#pragma once
#include <string>

namespace llm {

struct RankEnv {
  enum class Launcher { kNone, kMpi, kTorchrun };
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;  // torchrun only
  int master_port = 0;      // torchrun only
  Launcher launcher = Launcher::kNone;
};

// Reads the environment (see above). Open MPI's variables win when both sets are present.
RankEnv detect_rank_env();

// Rank 0 listens on MASTER_PORT, accepts the world-1 other ranks and sends each `blob` (length-prefixed); the
// others connect to MASTER_ADDR:MASTER_PORT (retrying until rank 0 is up) and return what they received.
// Nothing within timeout_s => llm::Error "rendezvous at ADDR:PORT not reached within N s" (or, on rank 0,
// naming how many ranks did connect). Peers say their rank and world size; a mismatch is an error too.
std::string tcp_broadcast_from_rank0(const RankEnv& env, const std::string& blob, double timeout_s);

}  // namespace llm
