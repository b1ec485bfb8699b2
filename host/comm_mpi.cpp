// comm_mpi.cpp — MpiComm (when built with MPI) and make_host_comm (see comm_mpi.h).
#include "host/comm_mpi.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <climits>
#include <cstdint>
#include <cstring>
#include <exception>

#include "host/error.h"


namespace llm {

#ifdef LLM_WITH_MPI
namespace {

// bf16 (uint16 bits of __nv_bfloat16) <-> fp32; the sum is formed in fp32 and rounded to nearest even.
float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

MPI_Op bf16_sum_op() {
  static MPI_Op op = [] {
    MPI_Op o;
    MPI_Op_create(&bf16_sum, /*commute=*/1, &o);
    return o;
  }();
  return op;
}

MPI_Datatype mpi_type(CommType t) { return t == CommType::kBf16 ? MPI_UINT16_T : MPI_FLOAT; }
MPI_Op sum_op(CommType t) { return t == CommType::kBf16 ? bf16_sum_op() : MPI_SUM; }
size_t type_bytes(CommType t) { return t == CommType::kBf16 ? 2 : 4; }

int count(size_t n, const char* what) {
  if (n > static_cast<size_t>(INT_MAX)) fail("MPI ", what, ": ", n, " elements exceed one MPI call's int count");
  return static_cast<int>(n);
}

}  // namespace

MpiComm::MpiComm() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_);
}

MpiComm::~MpiComm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && std::uncaught_exceptions() == 0) MPI_Finalize();
}

void MpiComm::all_reduce_sum(void* buf, size_t n, CommType type, void* stream) {
  // A padded buffer (n % world == 0) is summed as reduce-scatter + all-gather: each element is added up once, in
  // the same order as reduce_scatter_sum does it, and copied to everyone. So ZeRO-0 and ZeRO-1 see the same bits,
  // and every rank gets the same bits (MPI_Allreduce does not promise that, and ZeRO-0 replicas must not drift).
  if (n % world_ == 0 && n / world_ <= static_cast<size_t>(INT_MAX)) {
    reduce_scatter_sum(buf, n, type, stream);
    all_gather(buf, n, type, stream);
    return;
  }
  // otherwise MPI_Allreduce in chunks of at most INT_MAX elements (element-wise, so chunking changes nothing)
  char* p = static_cast<char*>(buf);
  for (size_t done = 0; done < n;) {
    const size_t k = std::min<size_t>(n - done, INT_MAX);
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, p + done * type_bytes(type), static_cast<int>(k), mpi_type(type), sum_op(type),
                   MPI_COMM_WORLD, &req);
    wait(&req, "all_reduce");
    done += k;
  }
}

void MpiComm::reduce_scatter_sum(void* buf, size_t n, CommType type, void*) {
  if (n % world_ != 0) fail("reduce_scatter_sum: ", n, " elements are not divisible by the world size ", world_);
  const int shard = count(n / world_, "reduce_scatter");
  // in place, MPI leaves rank r's sum at the START of buf; the contract wants it at its shard offset
  MPI_Request req;
  MPI_Ireduce_scatter_block(MPI_IN_PLACE, buf, shard, mpi_type(type), sum_op(type), MPI_COMM_WORLD, &req);
  wait(&req, "reduce_scatter");
  if (rank_ > 0) {
    char* p = static_cast<char*>(buf);
    const size_t bytes = static_cast<size_t>(shard) * type_bytes(type);
    std::memmove(p + rank_ * bytes, p, bytes);
  }
}

void MpiComm::all_gather(void* buf, size_t n, CommType type, void*) {
  if (n % world_ != 0) fail("all_gather: ", n, " elements are not divisible by the world size ", world_);
  const int shard = count(n / world_, "all_gather");
  MPI_Request req;
  MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, shard, mpi_type(type), MPI_COMM_WORLD, &req);
  wait(&req, "all_gather");
}

double MpiComm::all_reduce_sum_host(double x) {
  double sum = 0;
  MPI_Request req;
  MPI_Iallreduce(&x, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
  wait(&req, "all_reduce (host scalar)");
  return sum;
}

void MpiComm::broadcast_host(void* buf, size_t bytes, int root) {
  char* p = static_cast<char*>(buf);
  for (size_t done = 0; done < bytes;) {
    const size_t k = std::min<size_t>(bytes - done, INT_MAX);
    MPI_Request req;
    MPI_Ibcast(p + done, static_cast<int>(k), MPI_BYTE, root, MPI_COMM_WORLD, &req);
    wait(&req, "broadcast");
    done += k;
  }
}

void MpiComm::barrier() {
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  wait(&req, "barrier");
}

void MpiComm::wait(MPI_Request* req, const char* what) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  int done = 0;
  for (long polls = 0;; polls++) {
    MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (polls > 2000) {  // past the first fast polls: sleep between tests, up to 1 ms
      const long us = std::min<long>(1000, (polls - 2000) / 10 + 20);
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
    if (timeout_s_ > 0 && (polls & 63) == 0 &&
        std::chrono::duration<double>(clock::now() - start).count() > timeout_s_) {
      std::fflush(stdout);
      std::fprintf(stderr,
                   "error: data parallel: %s waited longer than --collective-timeout %g s for the other ranks "
                   "(rank %d of %d); a rank has stopped or hangs: ending every rank\n",
                   what, timeout_s_, rank_, world_);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, kExitBadInput);
    }
  }
}
#endif  // LLM_WITH_MPI

std::unique_ptr<Comm> make_host_comm(const RankEnv& env) {
  if (env.world == 1) return std::make_unique<LocalComm>();
  if (env.launcher == RankEnv::Launcher::kTorchrun)
    fail("WORLD_SIZE=", env.world, ": a torchrun-style launch (RANK/WORLD_SIZE/MASTER_ADDR) is for the NCCL GPU "
         "trainer; the CPU programs communicate through MPI: start them with mpirun -np ", env.world);
#ifdef LLM_WITH_MPI
  auto comm = std::make_unique<MpiComm>();
  if (comm->world_size() != env.world || comm->rank() != env.rank)
    fail("MPI says rank ", comm->rank(), " of ", comm->world_size(), " but the environment says rank ", env.rank,
         " of ", env.world, " (OMPI_COMM_WORLD_RANK/SIZE)");
  return comm;
#else
  fail("launched as rank ", env.rank, " of ", env.world, " but this build has no MPI (install libopenmpi-dev and "
       "re-run cmake)");
#endif
}

void abort_other_ranks(int exit_code) {
#ifdef LLM_WITH_MPI
  int initialized = 0, finalized = 0, world = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
#else
  (void)exit_code;
#endif
}

}  // namespace llm
