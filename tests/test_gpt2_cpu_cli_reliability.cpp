// Reliability of build/gpt2_cpu as a subprocess (issue 13): no run can be mixed with another, lost to a signal,
// poisoned by non-finite numbers, killed by the OOM killer or silently corrupted. Each test reproduces one
// defect of the list (it failed before the fix) on the "tiny" preset and tiny generated shards.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "cpu/gpt2_model.h"
#include "host/checkpoint.h"
#include "host_test_util.h"

using namespace host_test;

namespace {

Result run(const std::string& dir, const std::string& args) { return run_in_dir(dir, "'" GPT2_CPU_BIN "' " + args); }

// A program started in the background (sh -c "exec ..."): its pid is the program's own pid.
struct Background {
  pid_t pid = -1;
  int wait_status = 0;
  bool waited = false;
  // Waits up to timeout_s for the process to end; false if it did not (it is then killed).
  bool wait(double timeout_s = 120) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid, &wait_status, WNOHANG) == pid) return waited = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &wait_status, 0);
    waited = true;
    return false;
  }
  int exit_code() const { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }
  ~Background() {
    if (!waited && pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// Starts `cmd` (shell words) in dir with stdout/stderr in dir/<tag>.out / <tag>.err.
void start(Background* b, const std::string& dir, const std::string& cmd, const std::string& tag) {
  const std::string line = "cd '" + dir + "' && exec " + cmd + " > " + tag + ".out 2> " + tag + ".err";
  b->pid = fork();
  if (b->pid == 0) {
    execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
}

// Waits until pred() holds (true) or timeout_s passes (false).
template <class F>
bool wait_until(F pred, double timeout_s = 60) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int count_lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(what) != std::string::npos;
  return n;
}

class Gpt2CpuReliability : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = temp_dir();
    write_shard(dir + "/train.bin", lcg_tokens(4000, 1));
    write_shard(dir + "/val.bin", lcg_tokens(600, 2));
  }
  std::string dir;
};

const std::string kTrain = "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 --threads 1 -s 0 -v 0 ";
const std::string kBin = "'" GPT2_CPU_BIN "' ";

}  // namespace

// Issue 13 defect 1: a second trainer on the same -o waits for nobody and mixes its files with the first.
TEST_F(Gpt2CpuReliability, SecondTrainerOnSameOutputDirIsRefusedNamingThePid) {
  Background a;
  start(&a, dir, kBin + kTrain + "-x 1000000 -o out", "a");
  ASSERT_TRUE(wait_until([&] { return train_losses(dir + "/out/main.log").size() >= 2; })) << slurp(dir + "/a.err");
  Result b = run(dir, kTrain + "-x 2 -o out");
  EXPECT_EQ(b.code, 2) << b.out << b.err;
  EXPECT_NE(b.err.find("another trainer (pid " + std::to_string(a.pid) + ")"), std::string::npos) << b.err;
  EXPECT_EQ(b.out.find("step "), std::string::npos) << "the second trainer trained";
  // the kernel drops the lock when its holder dies, even by SIGKILL
  kill(a.pid, SIGKILL);
  ASSERT_TRUE(a.wait());
  Result c = run(dir, kTrain + "-x 2 -o out --overwrite");
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(exists(dir + "/out/DONE_00000002"));
}

// Issue 13 defect 1: a fresh run into a folder holding another run silently overwrote its checkpoints and
// appended to its log.
TEST_F(Gpt2CpuReliability, FreshRunIntoCheckpointFolderNeedsResumeOrOverwrite) {
  ASSERT_EQ(run(dir, kTrain + "-x 2 -o out").code, 0);
  const auto model = read_bytes(dir + "/out/model_00000002.bin");
  const std::string log = slurp(dir + "/out/main.log");
  Result r = run(dir, kTrain + "-x 2 -o out --seed 7");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("error: out: already holds checkpoints", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_TRUE(read_bytes(dir + "/out/model_00000002.bin") == model) << "the other run's checkpoint was changed";
  EXPECT_EQ(slurp(dir + "/out/main.log"), log) << "the other run's log was appended to";
  // --overwrite: the old run's checkpoints and log go, the new run's come
  r = run(dir, kTrain + "-x 1 -o out --seed 7 --overwrite");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(exists(dir + "/out/DONE_00000002"));
  EXPECT_FALSE(exists(dir + "/out/model_00000002.bin"));
  EXPECT_TRUE(exists(dir + "/out/DONE_00000001"));
  EXPECT_EQ(train_losses(dir + "/out/main.log").size(), 1u);
  // --overwrite with --resume makes no sense
  r = run(dir, kTrain + "-x 1 -o out --resume --overwrite");
  EXPECT_EQ(r.code, 2);
}

// Issue 13 defect 4: SIGTERM / SIGINT killed the trainer at once, losing every step since the last checkpoint.
// Now: the step ends, a complete checkpoint is written, one line says so, exit 0; the checkpoint resumes.
TEST_F(Gpt2CpuReliability, SigtermAndSigintFinishTheStepCheckpointAndExitZero) {
  for (int sig : {SIGTERM, SIGINT}) {
    const std::string out = sig == SIGTERM ? "term" : "int";
    Background a;
    start(&a, dir, kBin + kTrain + "-x 1000000 -o " + out, out);
    ASSERT_TRUE(wait_until([&] { return train_losses(dir + "/" + out + "/main.log").size() >= 3; }))
        << slurp(dir + "/" + out + ".err");
    kill(a.pid, sig);
    ASSERT_TRUE(a.wait(60)) << "the trainer did not stop";
    EXPECT_EQ(a.exit_code(), 0) << slurp(dir + "/" + out + ".err");
    const std::string stdout_text = slurp(dir + "/" + out + ".out");
    EXPECT_EQ(count_lines_with(stdout_text, "stopped by"), 1) << stdout_text;
    EXPECT_NE(stdout_text.find(sig == SIGTERM ? "stopped by SIGTERM after step " : "stopped by SIGINT after step "),
              std::string::npos)
        << stdout_text;
    const int64_t steps = static_cast<int64_t>(train_losses(dir + "/" + out + "/main.log").size());
    char done[32];
    std::snprintf(done, sizeof(done), "/DONE_%08lld", static_cast<long long>(steps));
    EXPECT_TRUE(exists(dir + "/" + out + done)) << "no complete checkpoint of the last step " << steps;
    EXPECT_EQ(std::system(("ls '" + dir + "/" + out + "' | grep -q '\\.tmp$'").c_str()) == 0, false) << ".tmp left";
    // the checkpoint is usable
    Result e = run(dir, "eval --model " + out + "/model_" + std::string(done + 6) + ".bin --data val.bin -b 2 -t 16 -m 2");
    EXPECT_EQ(e.code, 0) << e.err;
  }
}

// A second signal while the first is being handled ends the program at once (killed by that signal).
TEST_F(Gpt2CpuReliability, SecondSignalExitsAtOnce) {
  Background a;
  // larger batches: a step takes long enough that both signals arrive within it
  start(&a, dir, kBin + "train --preset tiny -i train.bin -j val.bin -b 32 -t 64 --threads 1 -s 0 -v 0 -x 1000000 -o out",
        "a");
  ASSERT_TRUE(wait_until([&] { return train_losses(dir + "/out/main.log").size() >= 1; })) << slurp(dir + "/a.err");
  kill(a.pid, SIGTERM);
  kill(a.pid, SIGINT);
  ASSERT_TRUE(a.wait(60));
  EXPECT_TRUE(WIFSIGNALED(a.wait_status)) << "exit code " << a.exit_code() << " " << slurp(dir + "/a.out");
  if (WIFSIGNALED(a.wait_status)) EXPECT_EQ(WTERMSIG(a.wait_status), SIGINT);
}

#ifdef LLM_MPIEXEC
// Under mpirun a signal to one rank stops every rank after the same step with one complete checkpoint.
TEST_F(Gpt2CpuReliability, SignalToOneRankStopsAllRanksWithACheckpoint) {
  Background a;
  start(&a, dir,
        "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
        "OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl_vader_single_copy_mechanism=none '" LLM_MPIEXEC
        "' " LLM_MPIEXEC_NUMPROC_FLAG " 2 " +
            kBin + kTrain + "-x 1000000 -o out",
        "a");
  ASSERT_TRUE(wait_until([&] { return train_losses(dir + "/out/main.log").size() >= 2; }, 120))
      << slurp(dir + "/a.err");
  const int rank0 = std::atoi(slurp(dir + "/out/LOCK").c_str());  // rank 0 holds the output lock
  ASSERT_GT(rank0, 0);
  kill(rank0, SIGTERM);  // only rank 0 is told: rank 1 must agree to stop after the same step
  ASSERT_TRUE(a.wait(60)) << "the ranks did not stop";
  EXPECT_EQ(a.exit_code(), 0) << slurp(dir + "/a.err");
  const std::string text = slurp(dir + "/a.out");
  EXPECT_EQ(count_lines_with(text, "stopped by SIGTERM after step"), 1) << text;
  const int64_t steps = static_cast<int64_t>(train_losses(dir + "/out/main.log").size());
  char done[32];
  std::snprintf(done, sizeof(done), "/DONE_%08lld", static_cast<long long>(steps));
  EXPECT_TRUE(exists(dir + "/out" + done)) << text;
}
#endif

// Issue 13 defect 5: the README's `gpt2_cpu train --resume -o out/d6 -x 400` failed: -x was part of the settings
// fingerprint, and flags not repeated (preset, -b, -t, -l, -u) fell back to their defaults. The same command
// lines as the README (the tiny preset and a short -x instead of d6 / 200 / 400), on the default data paths.
TEST_F(Gpt2CpuReliability, ReadmeResumeExampleExtendsTheRun) {
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "/data/tinyshakespeare'").c_str()), 0);
  write_shard(dir + "/data/tinyshakespeare/tiny_shakespeare_train.bin", lcg_tokens(6000, 1));
  write_shard(dir + "/data/tinyshakespeare/tiny_shakespeare_val.bin", lcg_tokens(2000, 2));
  Result a = run(dir, "train --preset tiny -b 8 -t 16 -x 4 -l 1e-3 -u 2 -o out/d6");
  ASSERT_EQ(a.code, 0) << a.err;
  Result b = run(dir, "train --resume -o out/d6 -x 8");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("resumed from out/d6 at step 4"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("step     8/8"), std::string::npos) << b.out;
  EXPECT_TRUE(exists(dir + "/out/d6/DONE_00000008"));
  // the default schedule is constant after warmup, so the extended run is the 8-step run, bit for bit
  Result c = run(dir, "train --preset tiny -b 8 -t 16 -x 8 -l 1e-3 -u 2 -o straight");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(read_bytes(dir + "/out/d6/model_00000008.bin") == read_bytes(dir + "/straight/model_00000008.bin"));
  // cadence flags may change on resume; a flag that changes the run is still refused
  Result d = run(dir, "train --resume -o out/d6 -x 10 -v 1 -s 0 -n 1");
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_TRUE(exists(dir + "/out/d6/DONE_00000009"));
  Result e = run(dir, "train --resume -o out/d6 -x 12 -b 4");
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("was written with different settings"), std::string::npos) << e.err;
  // a -x below the checkpoint's step is an error, not a silent no-op
  Result f = run(dir, "train --resume -o out/d6 -x 3");
  EXPECT_EQ(f.code, 2);
  EXPECT_NE(f.err.find("-x/--max-steps 3 is below the step 10"), std::string::npos) << f.err;
}
