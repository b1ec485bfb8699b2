// Progress output: the machine-readable log lines and the duration format.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "host/progress.h"
#include "host_test_util.h"

TEST(HostProgress, LogLinesAndEta) {
  const std::string dir = host_test::temp_dir(), log = dir + "/main.log";
  {
    llm::Progress p(10, log);
    testing::internal::CaptureStdout();
    p.val(0, 2.0f);
    p.train_step(1, 3.5f, 1e-3f, 0.25f, 500.0, 1000);  // first step: excluded from the average
    p.train_step(2, 3.25f, 1e-3f, 0.5f, 100.0, 1000);
    std::string out = testing::internal::GetCapturedStdout();
    EXPECT_NE(out.find("step     2/10 | loss 3.2500 | lr 1.00e-03 | norm 0.5000 | 100.0 ms | 10000 tok/s | ETA 1s"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("perplexity 7.3891"), std::string::npos) << out;
    EXPECT_DOUBLE_EQ(p.mean_tok_per_s(), 10000.0);
    testing::internal::CaptureStdout();
    p.train_step(3, 3.0f, 1e-3f, 0.5f, 100.0, 1000, 41.25);
    p.train_step(4, 3.0f, 1e-3f, 0.5f, 100.0, 1000, -1.0);
    out = testing::internal::GetCapturedStdout();
    EXPECT_NE(out.find("10000 tok/s | 41.2% MFU | ETA"), std::string::npos) << out;
    EXPECT_NE(out.find("10000 tok/s | n/a MFU | ETA"), std::string::npos) << out;
  }
  std::ifstream f(log);
  std::string l0, l1, l2, l3, l4;
  std::getline(f, l0);
  std::getline(f, l1);
  std::getline(f, l2);
  std::getline(f, l3);
  std::getline(f, l4);
  EXPECT_EQ(l0, "step 0 val 2.000000 ppl 7.3891");
  EXPECT_EQ(l1, "step 1 train 3.500000 lr 0.001 norm 0.250000 ms 500.0 tok_s 2000.0");
  EXPECT_EQ(l2, "step 2 train 3.250000 lr 0.001 norm 0.500000 ms 100.0 tok_s 10000.0");
  EXPECT_EQ(l3, "step 3 train 3.000000 lr 0.001 norm 0.500000 ms 100.0 tok_s 10000.0 mfu 41.25");  // known GPU
  EXPECT_EQ(l4, "step 4 train 3.000000 lr 0.001 norm 0.500000 ms 100.0 tok_s 10000.0");  // unknown GPU: no field
}

TEST(HostProgress, DurationFormat) {
  EXPECT_EQ(llm::Progress::format_duration(12.4), "12s");
  EXPECT_EQ(llm::Progress::format_duration(185), "3m05s");
  EXPECT_EQ(llm::Progress::format_duration(3720), "1h02m");
  EXPECT_EQ(llm::Progress::format_duration(-1), "?");
}

// The item progress bar (HellaSwag) when stderr is not a terminal: one line per 10% of the work, then the total
// time; nothing when disabled. And the hellaswag console/log lines of a training run.
TEST(HostProgress, ItemProgressAndHellaSwagLines) {
  testing::internal::CaptureStderr();
  {
    llm::ItemProgress bar("hellaswag", 20, true);
    for (int done = 1; done <= 20; done++) bar.update(done);
    bar.finish(20);
    llm::ItemProgress off("hellaswag", 20, false);
    off.update(10);
    off.finish(20);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 10u) << err;  // at 2, 4, ..., 18 and the final line
  EXPECT_EQ(lines[0].rfind("hellaswag 2/20 | ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(" items/s | ETA "), std::string::npos) << lines[0];
  EXPECT_EQ(lines[8].rfind("hellaswag 18/20 | ", 0), 0u) << lines[8];
  EXPECT_EQ(lines[9].rfind("hellaswag 20/20 | ", 0), 0u) << lines[9];
  EXPECT_NE(lines[9].find(" items/s | took "), std::string::npos) << lines[9];

  const std::string dir = host_test::temp_dir(), log = dir + "/main.log";
  testing::internal::CaptureStdout();
  {
    llm::Progress p(10, log);
    p.hellaswag(5, 4, 0.25, 0.5);
  }
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "hellaswag: items 4 | acc 0.2500 | acc_norm 0.5000 (step 5)\n");
  EXPECT_EQ(host_test::slurp(log), "step 5 hellaswag 0.250000 acc_norm 0.500000 items 4\n");
}
