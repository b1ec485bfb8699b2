// Data-parallel building blocks that need no mpirun: the launch environment (every missing / malformed variable
// is an error naming it), the TCP rendezvous (threads on localhost: delivery, rank 0 started late, nobody at
// MASTER_PORT => a timeout error instead of a hang, world-size mismatch), the even ZeRO-1 shards, the backend
// choice, and the loader mapping that makes N ranks read exactly what one rank with N× accumulation reads.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "host/comm.h"
#include "host/comm_mpi.h"
#include "host/data_loader.h"
#include "host/error.h"
#include "host/rank_env.h"
#include "host_test_util.h"

using namespace host_test;

namespace {

// Sets the given variables and clears every other launch variable for the scope of one test.
class ScopedLaunchEnv {
 public:
  explicit ScopedLaunchEnv(std::vector<std::pair<const char*, const char*>> vars) {
    for (const char* k : kAll) unsetenv(k);
    for (auto [k, v] : vars) setenv(k, v, 1);
  }
  ~ScopedLaunchEnv() {
    for (const char* k : kAll) unsetenv(k);
  }

 private:
  static constexpr const char* kAll[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                         "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
};

// A TCP port nobody listens on right now (bind to 0, read it back, close).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

llm::RankEnv torchrun(int rank, int world, int port) {
  llm::RankEnv e;
  e.rank = rank;
  e.world = world;
  e.local_rank = rank;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  e.launcher = llm::RankEnv::Launcher::kTorchrun;
  return e;
}

}  // namespace

TEST(DpRankEnv, NoVariablesIsOneProcess) {
  ScopedLaunchEnv env({});
  const llm::RankEnv e = llm::detect_rank_env();
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.launcher, llm::RankEnv::Launcher::kNone);
}

TEST(DpRankEnv, OpenMpiVariables) {
  ScopedLaunchEnv env({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"RANK", "0"}});  // Open MPI's win
  const llm::RankEnv e = llm::detect_rank_env();
  EXPECT_EQ(e.launcher, llm::RankEnv::Launcher::kMpi);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world, 4);
  EXPECT_EQ(e.local_rank, 1);
}

TEST(DpRankEnv, TorchrunVariables) {
  ScopedLaunchEnv env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"},
                       {"MASTER_PORT", "29500"}});
  const llm::RankEnv e = llm::detect_rank_env();
  EXPECT_EQ(e.launcher, llm::RankEnv::Launcher::kTorchrun);
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world, 2);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DpRankEnv, MissingOrInvalidVariablesNameTheVariable) {
  const std::vector<std::pair<std::vector<std::pair<const char*, const char*>>, std::string>> cases = {
      {{{"RANK", "0"}}, "WORLD_SIZE is not set"},
      {{{"WORLD_SIZE", "2"}}, "RANK is not set"},
      {{{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "RANK='2' is not an integer in [0, 1]"},
      {{{"RANK", "-1"}, {"WORLD_SIZE", "2"}}, "RANK='-1'"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "two"}}, "WORLD_SIZE='two'"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE='0'"},
      {{{"RANK", "1x"}, {"WORLD_SIZE", "2"}}, "RANK='1x'"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}, "LOCAL_RANK is not set"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_PORT", "1"}}, "MASTER_ADDR is not set"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "h"}}, "MASTER_PORT is not set"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
       "MASTER_PORT='70000'"},
      {{{"MASTER_ADDR", "h"}}, "WORLD_SIZE is not set"},
      {{{"OMPI_COMM_WORLD_RANK", "0"}}, "OMPI_COMM_WORLD_SIZE is not set"},
      {{{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "2"}}, "OMPI_COMM_WORLD_RANK='5'"},
  };
  for (const auto& [vars, message] : cases) {
    ScopedLaunchEnv env(vars);
    EXPECT_LLM_ERROR(llm::detect_rank_env(), message);
  }
}

TEST(DpComm, EvenShardsOfPaddedBuffers) {
  EXPECT_EQ(llm::Comm::padded(10, 1), 10u);
  EXPECT_EQ(llm::Comm::padded(10, 3), 12u);
  EXPECT_EQ(llm::Comm::padded(12, 3), 12u);
  EXPECT_EQ(llm::Comm::padded(0, 4), 0u);
  llm::LocalComm one;
  EXPECT_EQ(one.shard_begin(12), 0u);
  EXPECT_EQ(one.shard_end(12), 12u);
  double x = 2.5;
  EXPECT_EQ(one.all_reduce_sum_host(x), 2.5);
  char buf[3] = {1, 2, 3};
  one.broadcast_host(buf, 3, 0);
  one.barrier();
  EXPECT_EQ(buf[2], 3);
}

TEST(DpComm, HostBackendChoice) {
  llm::RankEnv single;
  auto c = llm::make_host_comm(single);
  EXPECT_EQ(c->world_size(), 1);
  EXPECT_EQ(c->rank(), 0);
  // a torchrun-style multi-process launch cannot use the MPI backend
  EXPECT_LLM_ERROR(llm::make_host_comm(torchrun(0, 2, 29500)), "WORLD_SIZE=2", "mpirun -np 2");
}

// Rank 0 and two peers in threads; the peers start first (they must retry until rank 0 listens).
TEST(DpRendezvous, BroadcastsRank0BlobToEveryRank) {
  const int port = free_port();
  std::string blob(100000, '\0');
  std::mt19937 gen(7);
  for (char& ch : blob) ch = static_cast<char>(gen());
  auto peer = [&](int r) { return llm::tcp_broadcast_from_rank0(torchrun(r, 3, port), "ignored", 20.0); };
  auto p1 = std::async(std::launch::async, peer, 1);
  auto p2 = std::async(std::launch::async, peer, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(llm::tcp_broadcast_from_rank0(torchrun(0, 3, port), blob, 20.0), blob);
  EXPECT_EQ(p1.get(), blob);
  EXPECT_EQ(p2.get(), blob);
  // one process: nothing to exchange
  EXPECT_EQ(llm::tcp_broadcast_from_rank0(llm::RankEnv{}, "solo", 1.0), "solo");
}

// Rank 1 with no rank 0 anywhere: a clear error after the timeout (the ctest TIMEOUT would catch a hang).
TEST(DpRendezvous, UnreachableRank0TimesOutWithMessage) {
  const int port = free_port();
  const std::string where = "127.0.0.1:" + std::to_string(port);
  EXPECT_LLM_ERROR(llm::tcp_broadcast_from_rank0(torchrun(1, 2, port), "", 0.5),
                   "rendezvous at " + where + " not reached within 0.5 s", "no answer from rank 0");
}

TEST(DpRendezvous, Rank0AloneTimesOutNamingTheMissingRanks) {
  const int port = free_port();
  EXPECT_LLM_ERROR(llm::tcp_broadcast_from_rank0(torchrun(0, 3, port), "id", 0.5), "not reached within 0.5 s",
                   "0 of the 2 other ranks connected");
}

TEST(DpRendezvous, WorldSizeMismatchIsAnError) {
  const int port = free_port();
  auto peer = std::async(std::launch::async, [&] {
    try {
      llm::tcp_broadcast_from_rank0(torchrun(1, 3, port), "", 10.0);  // thinks there are 3 ranks
      return std::string("no error");
    } catch (const llm::Error& e) {
      return std::string(e.what());
    }
  });
  EXPECT_LLM_ERROR(llm::tcp_broadcast_from_rank0(torchrun(0, 2, port), "id", 10.0),
                   "rank 1 says WORLD_SIZE=3, rank 0 has 2");
  EXPECT_NE(peer.get().find("rank 0 closed the connection"), std::string::npos);
}

TEST(DpRendezvous, BadSettings) {
  EXPECT_LLM_ERROR(llm::tcp_broadcast_from_rank0(torchrun(1, 2, 0), "", 1.0), "MASTER_PORT");
  EXPECT_LLM_ERROR(llm::tcp_broadcast_from_rank0(torchrun(1, 2, 29500), "", 0.0), "timeout must be positive");
  llm::RankEnv bad = torchrun(1, 2, 29500);
  bad.master_addr = "no-such-host.invalid";
  EXPECT_LLM_ERROR(llm::tcp_broadcast_from_rank0(bad, "", 1.0), "MASTER_ADDR='no-such-host.invalid'");
}

// The trainer's mapping: with W ranks and accum micro-steps per rank, rank r's micro-step m of step s reads global
// window g = m·W + r of the step's W·accum windows. So W ranks read exactly what one rank reads with W·accum
// micro-steps (every window once, none twice), over two shards and an epoch boundary.
TEST(DpLoader, RanksReadDisjointWindowsCoveringTheSingleRankRun) {
  const std::string dir = temp_dir();
  const int B = 2, T = 4, BT = B * T, W = 2, accum = 2;
  write_shard(dir + "/s_000.bin", [&] {  // token at position i = i (mod 60000): windows are identifiable
    std::vector<uint16_t> t(8 * W * BT + 1);
    for (size_t i = 0; i < t.size(); i++) t[i] = static_cast<uint16_t>(i);
    return t;
  }());
  write_shard(dir + "/s_001.bin", [&] {
    std::vector<uint16_t> t(4 * W * BT + 3);
    for (size_t i = 0; i < t.size(); i++) t[i] = static_cast<uint16_t>(30000 + i);
    return t;
  }());
  const std::string pattern = dir + "/s_*.bin";
  llm::DataLoader one(pattern, B, T, 65536);
  std::vector<llm::DataLoader*> ranks;
  llm::DataLoader r0(pattern, B, T, 65536, 0, W), r1(pattern, B, T, 65536, 1, W);
  ranks = {&r0, &r1};
  const int steps = 7;  // 7 steps × 4 windows = 28 > the 24 per epoch: wraps into epoch 1
  std::vector<int> x1(BT), y1(BT), x(BT), y(BT);
  for (int s = 0; s < steps; s++) {
    // the single rank's step: W·accum consecutive windows
    std::vector<std::vector<int>> single_x, single_y;
    for (int i = 0; i < W * accum; i++) {
      one.next_batch(x1.data(), y1.data());
      single_x.push_back(x1);
      single_y.push_back(y1);
    }
    std::set<int> first_tokens;
    for (int m = 0; m < accum; m++)
      for (int r = 0; r < W; r++) {
        ranks[r]->next_batch(x.data(), y.data());
        const int g = m * W + r;
        EXPECT_EQ(x, single_x[g]) << "step " << s << " micro " << m << " rank " << r;
        EXPECT_EQ(y, single_y[g]) << "step " << s << " micro " << m << " rank " << r;
        first_tokens.insert(x[0]);
      }
    EXPECT_EQ(first_tokens.size(), static_cast<size_t>(W * accum)) << "two ranks read the same window";
  }
  EXPECT_EQ(one.position().epoch, 1);
  EXPECT_EQ(r0.position().epoch, 1);
  // after the same number of optimizer steps the positions agree (so rank 0's position resumes every rank)
  EXPECT_EQ(r0.position().shard, r1.position().shard);
  EXPECT_EQ(r0.position().window, r1.position().window);
}
