// Reliability of the GPU trainer (issue 13), run through the CUDA-on-CPU build train_gpt2cu_cpu as a subprocess:
// it shares gpt2_cpu's driver (host/train_loop.h), so SIGTERM, the output-directory lock and the memory checks
// must hold for it too. (tests/test_gpt2_cpu_cli_reliability.cpp covers every case on gpt2_cpu.)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "host_test_util.h"

using namespace host_test;

namespace {

const std::string kBin = "'" TRAIN_GPT2CU_BIN "' ";
const std::string kTrain =
    "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 --threads 1 -s 0 -v 0 --precision fp32 ";

class TrainerReliability : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = temp_dir();
    write_shard(dir + "/train.bin", lcg_tokens(4000, 1));
    write_shard(dir + "/val.bin", lcg_tokens(600, 2));
  }
  std::string dir;
};

template <class F>
bool wait_until(F pred, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TEST_F(TrainerReliability, SigtermCheckpointsAndExitsZeroAndTheLockNamesThePid) {
  const std::string line = "cd '" + dir + "' && exec " + kBin + kTrain + "-x 1000000 -o out > a.out 2> a.err";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_TRUE(wait_until([&] { return train_losses(dir + "/out/main.log").size() >= 2; }, 120)) << slurp(dir + "/a.err");
  // a second trainer on the same -o: exit 2 naming the holder
  Result b = run_in_dir(dir, kBin + kTrain + "-x 2 -o out");
  EXPECT_EQ(b.code, 2) << b.err;
  EXPECT_NE(b.err.find("another trainer (pid " + std::to_string(pid) + ")"), std::string::npos) << b.err;
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_TRUE(wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 60)) << "did not stop";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir + "/a.err");
  const std::string out = slurp(dir + "/a.out");
  EXPECT_NE(out.find("stopped by SIGTERM after step "), std::string::npos) << out;
  const size_t steps = train_losses(dir + "/out/main.log").size();
  char done[32];
  std::snprintf(done, sizeof(done), "/DONE_%08zu", steps);
  EXPECT_TRUE(exists(dir + "/out" + done)) << out;
}

TEST_F(TrainerReliability, ModelTooLargeForMemoryIsExitTwoNamingTheFile) {
  // a valid llm.c header claiming ~97G parameters in a sparse file of matching size
  std::vector<uint8_t> h(1024, 0);
  const int32_t slots[8] = {20240326, 3, 1024, 50257, 30, 128, 16384, 50304};
  std::memcpy(h.data(), slots, sizeof(slots));
  write_bytes(dir + "/huge95g.bin", h);
  const uint64_t C = 16384, L = 30, P = (50304 + 1024) * C + L * (12 * C * C + 13 * C) + 2 * C;
  ASSERT_EQ(truncate((dir + "/huge95g.bin").c_str(), static_cast<off_t>(1024 + 4 * P)), 0);
  for (const std::string& args : {std::string("generate --model huge95g.bin --prompt-ids 1 -n 1"),
                                   std::string("eval --model huge95g.bin --data val.bin")}) {
    Result r = run_in_dir(dir, kBin + args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find("error: huge95g.bin: needs "), std::string::npos) << args << ": " << r.err;
  }
}

// `--resume -o DIR -x N` continues a GPU run with the run's own --precision / --attention / --recompute (before:
// the defaults bf16 / auto / 0 came back and the fingerprint refused an fp32 run).
TEST_F(TrainerReliability, ResumeInheritsTheProgramFlags) {
  Result a = run_in_dir(dir, kBin + kTrain + "-x 2 -r 1 -o out");
  ASSERT_EQ(a.code, 0) << a.err;
  Result b = run_in_dir(dir, kBin + "train --resume -o out -x 3");
  ASSERT_EQ(b.code, 0) << b.out << b.err;
  EXPECT_NE(b.out.find("resumed from out at step 2"), std::string::npos) << b.out;
  EXPECT_TRUE(exists(dir + "/out/DONE_00000003"));
  // given explicitly and different: refused by the fingerprint
  Result c = run_in_dir(dir, kBin + "train --resume -o out -x 4 --precision bf16");
  EXPECT_EQ(c.code, 2) << c.out;
  EXPECT_NE(c.err.find("was written with different settings"), std::string::npos) << c.err;
}
