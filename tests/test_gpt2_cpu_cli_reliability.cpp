// Reliability of build/gpt2_cpu as a subprocess (issue 13): no run can be mixed with another, lost to a signal,
// poisoned by non-finite numbers, killed by the OOM killer or silently corrupted. Each test reproduces one
// defect of the list (it failed before the fix) on the "tiny" preset and tiny generated shards.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cpu/gpt2_model.h"
#include "host/checkpoint.h"
#include "host/crc32c.h"
#include "host/train_loop.h"
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
const std::string kTrainNoModel = "train -i train.bin -j val.bin -b 2 -t 16 --threads 1 -s 0 -v 0 ";
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

namespace {
// A valid tiny model file; then `poke(path, index, value)` overwrites parameter `index` (fp32 .bin).
void save_tiny(const std::string& path, uint64_t seed = 1) {
  llm::GPT2Config cfg = llm::preset_config("tiny");
  llm::GPT2Model model(cfg);
  model.init_gpt2(seed);
  llm::save_checkpoint(path, cfg, model.params());
}
// (and drops the file's CRC-32C, as in a file written without one, e.g. by llm.c: the value checks are tested)
void poke(const std::string& path, size_t offset_bytes, float value) {
  auto b = read_bytes(path);
  std::memcpy(&b[offset_bytes], &value, 4);
  const int crc_slot = get_i32(b, 0) == 20240326 ? 10 : 16;  // model : training state
  set_i32(b, crc_slot, 0);
  set_i32(b, crc_slot + 1, 0);
  write_bytes(path, b);
}
}  // namespace

// Issue 13 defect 3: NaN weights loaded silently from .bin and safetensors; eval printed "val_loss nan" with
// exit 0 and generate printed garbage with exit 0. Now every loader names the tensor, exit 2.
TEST_F(Gpt2CpuReliability, NonFiniteWeightsAreRejectedNamingTheTensor) {
  save_tiny(dir + "/good.bin");
  ASSERT_EQ(std::system(("cp '" + dir + "/good.bin' '" + dir + "/nan.bin'").c_str()), 0);
  poke(dir + "/nan.bin", 1024 + 4 * 100, NAN);  // wte element 100
  ASSERT_EQ(run(dir, "export --model good.bin -o hf").code, 0);
  // the first float of the safetensors data section
  auto st = read_bytes(dir + "/hf/model.safetensors");
  uint64_t header = 0;
  std::memcpy(&header, st.data(), 8);
  const float inf = INFINITY;
  std::memcpy(&st[8 + header], &inf, 4);
  write_bytes(dir + "/hf/model.safetensors", st);
  for (const std::string& args :
       {std::string("eval --model nan.bin --data val.bin -b 2 -t 16"), std::string("generate --model nan.bin --prompt-ids 1,2 -n 2"),
        std::string("export --model nan.bin -o out_hf"), kTrainNoModel + "-e nan.bin -x 1", std::string("eval --model hf --data val.bin -b 2 -t 16")}) {
    Result r = run(dir, args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find("holds a non-finite value"), std::string::npos) << args << ": " << r.err;
    EXPECT_NE(r.err.find(args.find("hf --data") != std::string::npos ? "hf" : "nan.bin"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tensor "), std::string::npos) << args << ": " << r.err;
  }
  // --allow-nonfinite loads it, but eval still never reports a NaN loss with exit 0
  Result r = run(dir, "eval --model nan.bin --data val.bin -b 2 -t 16 --allow-nonfinite");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("the mean loss on val.bin is"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("val_loss"), std::string::npos) << r.out;
  // a NaN in a training state's AdamW moments is refused on resume
  ASSERT_EQ(run(dir, kTrain + "-x 2 -o run").code, 0);
  poke(dir + "/run/state_00000002.bin", static_cast<size_t>(std::filesystem::file_size(dir + "/run/state_00000002.bin")) - 4, NAN);
  r = run(dir, kTrain + "-x 4 -o run --resume");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("state_00000002.bin: AdamW v holds a non-finite value"), std::string::npos) << r.err;
}

// Issue 13 defect 3: a diverging run wrote DONE for a model whose forward gives NaN. Now a step whose gradient
// norm is not finite is skipped with a warning, --max-bad-steps of them in a row stop the run (exit 2), and no
// checkpoint of non-finite numbers is ever marked complete. Weights whose forward overflows (finite, 1e30
// LayerNorm gains) make every step bad.
TEST_F(Gpt2CpuReliability, NonFiniteStepsAreSkippedAndStopTheRun) {
  save_tiny(dir + "/huge.bin");
  const llm::GPT2Config cfg = llm::preset_config("tiny");
  const auto off = llm::param_offsets(cfg);
  for (int i = 0; i < cfg.channels; i++) poke(dir + "/huge.bin", 1024 + 4 * (off[llm::kLn1w] + i), 1e30f);
  Result r = run(dir, kTrainNoModel + "-e huge.bin -x 20 -n 1 --max-bad-steps 3 -o out");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_EQ(count_lines_with(r.out, "update skipped"), 3) << r.out;
  EXPECT_NE(r.err.find("training diverged: 3 steps in a row"), std::string::npos) << r.err;
  EXPECT_EQ(std::system(("ls '" + dir + "/out' | grep -q DONE_").c_str()) == 0, false) << "a DONE was written";
  // eval of such weights: exit 2, not "val_loss nan"
  r = run(dir, "eval --model huge.bin --data val.bin -b 2 -t 16");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out.find("val_loss"), std::string::npos) << r.out;
  // a flag value that makes no sense
  EXPECT_EQ(run(dir, kTrain + "-x 1 --max-bad-steps 0").code, 2);
}

namespace {
// An llm.c header claiming ~97G parameters (L=30, C=16384, V=50257) in a sparse file of exactly the size it
// implies (390 GB on disk as a hole): valid in every field, far beyond any machine's memory.
std::string write_huge_sparse_model(const std::string& dir) {
  llm::GPT2Config c;
  c.max_seq_len = 1024;
  c.vocab_size = 50257;
  c.padded_vocab_size = 50304;
  c.num_layers = 30;
  c.num_heads = 128;
  c.channels = 16384;
  std::vector<uint8_t> h(1024, 0);
  const int32_t slots[8] = {20240326, 3, c.max_seq_len, c.vocab_size, c.num_layers, c.num_heads, c.channels,
                            c.padded_vocab_size};
  std::memcpy(h.data(), slots, sizeof(slots));
  const std::string path = dir + "/huge95g.bin";
  write_bytes(path, h);
  EXPECT_EQ(truncate(path.c_str(), static_cast<off_t>(1024 + 4 * llm::num_parameters(c))), 0);
  return path;
}
}  // namespace

// Issue 13 defect 2: such a header made generate/export/finetune-* abort with std::bad_alloc (rc 134) and
// train/eval print "out of memory" (rc 1) without naming the file. Now: exit 2, "error: <file>: needs ... GiB".
TEST_F(Gpt2CpuReliability, ModelTooLargeForMemoryIsExitTwoNamingTheFile) {
  write_huge_sparse_model(dir);
  const std::string ft = std::string(LLM_SOURCE_DIR) + "/data/finetune/";
  for (const std::string& args :
       {std::string("eval --model huge95g.bin --data val.bin"), std::string("generate --model huge95g.bin --prompt-ids 1 -n 1"),
        std::string("export --model huge95g.bin -o hf"), kTrainNoModel + "-e huge95g.bin -x 1 -o out",
        "finetune-classify --model huge95g.bin --train " + ft + "sms_spam_train.csv --val " + ft +
            "sms_spam_validation.csv --test " + ft + "sms_spam_test.csv --out x.cls",
        "finetune-instruct --model huge95g.bin --data " + ft + "instruction-data.json --out x.bin"}) {
    Result r = run(dir, args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << ": " << r.err;
    EXPECT_NE(r.err.find("huge95g.bin"), std::string::npos) << args << ": " << r.err;
    EXPECT_NE(r.err.find(" GiB"), std::string::npos) << args << ": " << r.err;
    EXPECT_NE(r.err.find("GiB are available"), std::string::npos) << args << ": " << r.err;
    EXPECT_FALSE(exists(dir + "/out")) << args;
  }
}

// Issue 13 defect 12: `train --preset gpt2-xl -b 1 -t 64` on a 24 GiB machine allocated for 52 s and was then
// OOM-killed (rc 137, no message). Now the run's need is estimated and refused with the figures, exit 2, before
// anything is allocated. LLM_MEMORY_LIMIT caps the memory at 16 GiB, so the
// test gives the same answer on a larger machine. The refusal runs under a 2 GiB address-space limit (ulimit -v):
// a program that allocated the 23 GiB (or even the 6 GiB of weights) first would end in bad_alloc, not this message.
TEST_F(Gpt2CpuReliability, TrainingRunThatCannotFitIsRefusedWithTheFigures) {
  Result r = run_in_dir(dir, "ulimit -v 2097152; LLM_MEMORY_LIMIT=17179869184 '" GPT2_CPU_BIN
                             "' train --preset gpt2-xl -b 1 -t 64 -i train.bin -j val.bin -x 1 -o out");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("not enough memory for this run: preset gpt2-xl"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1557686400 parameters; weights, gradients and AdamW m and v need 23.21 GiB"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("GiB are available"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(dir + "/out"));
  // a run that fits still runs under the same limit
  r = run_in_dir(dir, "LLM_MEMORY_LIMIT=17179869184 '" GPT2_CPU_BIN "' " + kTrain + "-x 1");
  EXPECT_EQ(r.code, 0) << r.err;
}

// Issue 13 defect 6: --threads 40000 failed inside libgomp (rc 1), 100000 segfaulted; --seed -1, 2^64 and 1e23
// were all taken as 2^64-1. Now both are bounded and parsed strictly: exit 2 naming the flag.
TEST_F(Gpt2CpuReliability, ThreadsAndSeedAreBoundedAndStrict) {
  save_tiny(dir + "/good.bin");
  for (const std::string& args :
       {kTrain + "-x 1 --threads 40000", kTrain + "-x 1 --threads 100000", kTrain + "-x 1 --threads -1",
        std::string("eval --model good.bin --data val.bin --threads 2000"), kTrain + "-x 1 --seed -1",
        kTrain + "-x 1 --seed 18446744073709551616", kTrain + "-x 1 --seed 1e23", kTrain + "-x 1 --seed 12abc",
        std::string("generate --model good.bin --prompt-ids 1 -n 1 --seed -1")}) {
    Result r = run(dir, args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << ": " << r.err;
    EXPECT_NE(r.err.find(args.find("--seed") != std::string::npos ? "--seed" : "--threads"), std::string::npos)
        << args << ": " << r.err;
    EXPECT_EQ(r.out.find("step "), std::string::npos) << args;
  }
  Result r = run(dir, kTrain + "-x 1 --seed 18446744073709551615 --threads 1024");  // the largest values
  EXPECT_EQ(r.code, 0) << r.err;
}

// Issue 13 defect 7: a missing or wrong LLM_TOKENIZER_DIR silently fell back to the bundled vocabulary.
TEST_F(Gpt2CpuReliability, UnusableTokenizerDirIsAnError) {
  save_tiny(dir + "/good.bin");
  for (const std::string& args : {std::string("generate --model good.bin --prompt a -n 1"), kTrain + "-x 1 -s 1 -o out"}) {
    Result r = run_in_dir(dir, "LLM_TOKENIZER_DIR=/nonexistent/vocab '" GPT2_CPU_BIN "' " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find("LLM_TOKENIZER_DIR=/nonexistent/vocab: holds neither"), std::string::npos) << r.err;
    EXPECT_FALSE(exists(dir + "/out")) << args;
  }
  Result r = run_in_dir(dir, "LLM_TOKENIZER_DIR='" LLM_SOURCE_DIR "/data/gpt2' '" GPT2_CPU_BIN
                             "' generate --model good.bin --prompt a -n 1");
  EXPECT_EQ(r.code, 0) << r.err;
}

// Issue 13 defect 8: failed writes to main.log were ignored (a run on a full disk ended rc 0 with a log that
// started at step 1147). main.log -> /dev/full: every write fails with ENOSPC.
TEST_F(Gpt2CpuReliability, LogWriteFailureStopsTheRun) {
  ASSERT_EQ(std::system(("mkdir '" + dir + "/out' && ln -s /dev/full '" + dir + "/out/main.log'").c_str()), 0);
  Result r = run(dir, kTrain + "-x 3 -o out");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("out/main.log: cannot write the log (No space left on device)"), std::string::npos) << r.err;
}

// Issue 13 defect 10: a flipped byte in a model or state file loaded without notice. Files we write carry a
// CRC-32C (model: header slots 10/11, which llm.c's reader ignores; state: slots 16/17); a flipped byte is
// exit 2 naming the file. Files without a CRC (llm.c's, ours from before) still load.
TEST_F(Gpt2CpuReliability, FlippedByteInModelOrStateFileIsDetected) {
  ASSERT_EQ(run(dir, kTrain + "-x 2 -o run").code, 0);
  const std::string model = dir + "/run/model_00000002.bin", state = dir + "/run/state_00000002.bin";
  const auto good_model = read_bytes(model), good_state = read_bytes(state);
  EXPECT_EQ(get_i32(good_model, 10), 1) << "no CRC flag in the model header";
  EXPECT_EQ(get_i32(good_state, 16), 1) << "no CRC flag in the state header";
  // one bit of one weight (a small change the finite check cannot see)
  auto b = good_model;
  b[1024 + 4 * 1000 + 1] ^= 0x01;
  write_bytes(model, b);
  Result r = run(dir, "eval --model run/model_00000002.bin --data val.bin -b 2 -t 16 -m 1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("run/model_00000002.bin: CRC-32C mismatch"), std::string::npos) << r.err;
  r = run(dir, kTrain + "-x 4 -o run --resume");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("model_00000002.bin: CRC-32C mismatch"), std::string::npos) << r.err;
  write_bytes(model, good_model);
  // one byte of the AdamW state, and one of the header (the loader position)
  for (size_t at : {good_state.size() - 100, size_t{4 * 12}}) {
    auto s = good_state;
    s[at] ^= 0x10;
    write_bytes(state, s);
    r = run(dir, kTrain + "-x 4 -o run --resume");
    EXPECT_EQ(r.code, 2) << "byte " << at;
    EXPECT_NE(r.err.find("state_00000002.bin: CRC-32C mismatch"), std::string::npos) << r.err;
  }
  write_bytes(state, good_state);
  // without a CRC (llm.c's own files have slots 10/11 zero): loads as before
  b = good_model;
  set_i32(b, 10, 0);
  set_i32(b, 11, 0);
  write_bytes(dir + "/nocrc.bin", b);
  r = run(dir, "eval --model nocrc.bin --data val.bin -b 2 -t 16 -m 1");
  EXPECT_EQ(r.code, 0) << r.err;
  // and a version-1 state file (no settings, no CRC) still resumes
  auto s1 = good_state;
  const int32_t flen = get_i32(s1, 14), slen = get_i32(s1, 15);
  s1.erase(s1.begin() + 1024 + flen, s1.begin() + 1024 + flen + slen);
  set_i32(s1, 1, 1);
  for (int slot : {15, 16, 17}) set_i32(s1, slot, 0);
  write_bytes(state, s1);
  r = run(dir, kTrain + "-x 1000000 -o run --resume -x 3");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(exists(dir + "/run/DONE_00000003"));
}

// Issue 13 defect 9: checkpoints were written open -> write -> rename with no fsync before the DONE marker.
// Now each file is fsynced before its rename and the directory after it, model and state before DONE.
TEST_F(Gpt2CpuReliability, CheckpointFilesAreSyncedBeforeTheDoneMarker) {
  if (std::system("strace -o /dev/null true > /dev/null 2>&1") != 0) GTEST_SKIP() << "strace is not usable here";
  Result r = run_in_dir(dir, "strace -f -e trace=fsync,fdatasync,rename,renameat,renameat2 -o trace.txt '" GPT2_CPU_BIN
                             "' " + kTrain + "-x 1 -o out");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> events;  // "fsync", "rename:<target>"
  std::istringstream in(slurp(dir + "/trace.txt"));
  for (std::string line; std::getline(in, line);) {
    if (line.find("fsync(") != std::string::npos || line.find("fdatasync(") != std::string::npos) events.push_back("fsync");
    for (const char* f : {"model_00000001.bin\"", "state_00000001.bin\"", "DONE_00000001\""})
      if (line.find("rename") != std::string::npos && line.find(std::string("out/") + f) != std::string::npos &&
          line.find(".tmp\"") != std::string::npos)
        events.push_back(std::string("rename:") + f);
  }
  auto at = [&](const std::string& e) { return std::find(events.begin(), events.end(), e) - events.begin(); };
  const auto m = at("rename:model_00000001.bin\""), s = at("rename:state_00000001.bin\""),
             d = at("rename:DONE_00000001\"");
  ASSERT_LT(d, static_cast<long>(events.size())) << slurp(dir + "/trace.txt");
  ASSERT_LT(m, s);
  ASSERT_LT(s, d);
  auto fsyncs = [&](long from, long to) { return std::count(events.begin() + from, events.begin() + to, "fsync"); };
  EXPECT_GE(fsyncs(0, m), 1) << "model file not synced before its rename";
  EXPECT_GE(fsyncs(m, s), 2) << "directory after the model / state file before its rename";
  EXPECT_GE(fsyncs(s, d), 2) << "directory after the state / DONE before its rename";
  EXPECT_GE(fsyncs(d, static_cast<long>(events.size())), 1) << "directory after DONE";
}

#ifdef LLM_MPIEXEC
// Issue 13 defect 11: under mpirun a rank that stops (SIGSTOP, a hung NFS read) left the others spinning at 98 %
// CPU forever. Now a collective waiting longer than --collective-timeout ends every rank with a message.
TEST_F(Gpt2CpuReliability, StoppedRankEndsEveryRankAfterTheCollectiveTimeout) {
  Background a;
  start(&a, dir,
        "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
        "OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl_vader_single_copy_mechanism=none '" LLM_MPIEXEC
        "' " LLM_MPIEXEC_NUMPROC_FLAG " 2 " +
            kBin + kTrain + "-x 1000000 -o out --collective-timeout 2",
        "a");
  ASSERT_TRUE(wait_until([&] { return train_losses(dir + "/out/main.log").size() >= 2; }, 120))
      << slurp(dir + "/a.err");
  const int rank0 = std::atoi(slurp(dir + "/out/LOCK").c_str());
  ASSERT_GT(rank0, 0);
  kill(rank0, SIGSTOP);
  const bool ended = a.wait(60);
  kill(rank0, SIGKILL);  // (if it is still there)
  ASSERT_TRUE(ended) << "the other rank kept waiting";
  EXPECT_NE(a.exit_code(), 0);
  const std::string err = slurp(dir + "/a.err");
  EXPECT_NE(err.find("waited longer than --collective-timeout 2 s for the other ranks (rank 1 of 2)"),
            std::string::npos)
      << err;
}
#endif

// The new flags are documented in --help.
TEST_F(Gpt2CpuReliability, NewFlagsAreInTheHelp) {
  Result r = run(dir, "train --help");
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"--overwrite", "--max-bad-steps", "--allow-nonfinite", "--collective-timeout", "--seed"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  for (const char* cmd : {"eval --help", "generate --help", "export --help"}) {
    r = run(dir, cmd);
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("--allow-nonfinite"), std::string::npos) << cmd;
  }
}

// The checksum is CRC-32C (the standard check value), the same in one piece or chained.
TEST(Crc32c, CheckValueAndChaining) {
  const char* s = "123456789";
  EXPECT_EQ(llm::crc32c(s, 9), 0xE3069283u);
  EXPECT_EQ(llm::crc32c(s + 4, 5, llm::crc32c(s, 4)), 0xE3069283u);
  EXPECT_EQ(llm::crc32c(s, 0), 0u);
}

#ifdef LLM_MPIEXEC
// Ranks that mpirun starts on one machine share its memory: the need is counted once per local rank.
TEST_F(Gpt2CpuReliability, RanksOnOneMachineShareTheMemoryCheck) {
  const uint64_t one = llm::train_memory_bytes(llm::preset_config("tiny"), 2, 16, false);
  const std::string limit = "LLM_MEMORY_LIMIT=" + std::to_string(one + one / 2);  // one rank fits, two do not
  const std::string mpi = "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                          "OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none "
                          "OMPI_MCA_btl_vader_single_copy_mechanism=none " + limit + " timeout -k 5 120 '" LLM_MPIEXEC
                          "' " LLM_MPIEXEC_NUMPROC_FLAG " ";
  Result r = run_in_dir(dir, mpi + "1 " + kBin + kTrain + "-x 1");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_in_dir(dir, mpi + "2 " + kBin + kTrain + "-x 1 -d 64");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.err.find("per rank, x 2 ranks on this machine"), std::string::npos) << r.err;
}
#endif
