// test_hellaswag.cpp — HellaSwag evaluation (host/hellaswag.h): parsing and bad input, tokenization and left
// truncation against transformers' tokenizer, batching and scoring against a closed-form model, and both programs
// (gpt2_cpu, train_gpt2cu_cpu) against the HF reference of scripts/gen_hellaswag_fixtures.py, standalone and
// during training.
//
// Fixtures (tests/fixtures/hellaswag/): sample.jsonl (24 items written for the tests in the dataset's format),
// tiny/ (a random GPT-2 with GPT-2's vocabulary, n_positions 64, fp16 weights), ref.json (tokens after truncation,
// per-ending SUM and MEAN losses, predictions; torch float64 on the fp16 weights).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/hellaswag.h"
#include "host/tokenizer.h"
#include "host_test_util.h"

namespace {

using host_test::Result;
using host_test::run_in_dir;
using host_test::slurp;
using host_test::temp_dir;

const std::string kFix = std::string(LLM_SOURCE_DIR) + "/tests/fixtures/hellaswag";
const std::string kSample = kFix + "/sample.jsonl";
const std::string kModel = kFix + "/tiny";

nlohmann::json reference() { return nlohmann::json::parse(slurp(kFix + "/ref.json")); }

const llm::Tokenizer& tokenizer() {
  static const llm::Tokenizer tok = llm::Tokenizer::from_files(std::string(LLM_SOURCE_DIR) + "/data/gpt2/encoder.json",
                                                               std::string(LLM_SOURCE_DIR) + "/data/gpt2/vocab.bpe");
  return tok;
}

const char* kGood = R"({"ctx": "A man opens a door. He", "endings": ["walks in.", "x", "y", "z"], "label": 0})";

// ---- parsing and bad input ----

TEST(HellaSwagParse, ReadsTheDatasetFields) {
  const llm::HellaSwagText t = llm::parse_hellaswag_line(
      R"({"ind": 4, "ctx_a": "a", "ctx": "A man opens a door. He", "endings": ["walks in.", "b", "c", "d"],)"
      R"( "label": 3, "split": "val"})",
      "f:1");
  EXPECT_EQ(t.ctx, "A man opens a door. He");
  EXPECT_EQ(t.endings[0], "walks in.");
  EXPECT_EQ(t.endings[3], "d");
  EXPECT_EQ(t.label, 3);
  // some copies of the dataset store the label as a string
  EXPECT_EQ(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": "2"})", "f:1").label,
            2);
}

TEST(HellaSwagParse, BadLinesAreErrorsNamingTheLineAndTheProblem) {
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b")", "d.jsonl:7"), "d.jsonl:7",
                   "not valid JSON");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line("[1, 2]", "f:2"), "f:2", "expected a JSON object");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"endings": ["a", "b", "c", "d"], "label": 0})", "f:3"), "f:3",
                   "missing field \"ctx\"");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": 5, "endings": ["a", "b", "c", "d"], "label": 0})", "f:1"),
                   "\"ctx\" must be a string");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "label": 0})", "f:1"), "missing field \"endings\"");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c"], "label": 0})", "f:1"),
                   "array of 4 strings", "3 elements");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", 3, "d"], "label": 0})", "f:1"),
                   "ending 2 must be a string");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "", "c", "d"], "label": 0})", "f:1"),
                   "ending 1 is empty");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "", "endings": ["a", "b", "c", "d"], "label": 0})", "f:1"),
                   "empty \"ctx\"");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c", "d"]})", "f:1"),
                   "missing field \"label\"");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": 4})", "f:1"),
                   "label 4 is not in 0..3");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": -1})", "f:1"),
                   "label -1 is not in 0..3");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": "x"})", "f:1"),
                   "label \"x\" is not in 0..3");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line(R"({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": 1.5})", "f:1"),
                   "must be an integer");
  EXPECT_LLM_ERROR(llm::parse_hellaswag_line("{\"ctx\": \"\xff\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], "
                                             "\"label\": 0}", "f:1"),
                   "not valid JSON");  // invalid UTF-8 inside a string
}

TEST(HellaSwagLoad, FilesFailWithTheirNameAndLine) {
  const std::string dir = temp_dir();
  EXPECT_LLM_ERROR(llm::load_hellaswag(dir + "/missing.jsonl", tokenizer()), dir + "/missing.jsonl");
  host_test::write_bytes(dir + "/empty.jsonl", {'\n', ' ', '\n'});
  EXPECT_LLM_ERROR(llm::load_hellaswag(dir + "/empty.jsonl", tokenizer()), "empty.jsonl", "no HellaSwag items");
  const std::string bad = std::string(kGood) + "\n\n" + kGood + "\n{\"ctx\": \"c\"\n";
  host_test::write_bytes(dir + "/bad.jsonl", std::vector<uint8_t>(bad.begin(), bad.end()));
  EXPECT_LLM_ERROR(llm::load_hellaswag(dir + "/bad.jsonl", tokenizer()), "bad.jsonl:4", "not valid JSON");
  // --max-items stops before the bad line; blank lines are skipped
  EXPECT_EQ(llm::load_hellaswag(dir + "/bad.jsonl", tokenizer(), 2).size(), 2u);
}

// ---- tokenization and truncation: our tokenizer and fit_hellaswag vs transformers + the generator's rule ----

TEST(HellaSwagLoad, TokensAndTruncationMatchTheReference) {
  const nlohmann::json ref = reference();
  std::vector<llm::HellaSwagItem> items = llm::load_hellaswag(kSample, tokenizer());
  ASSERT_EQ(items.size(), ref["items"].size());
  const int cut = llm::fit_hellaswag(&items, ref["n_positions"].get<int>(), 50257, kSample);
  int ref_cut = 0;
  for (size_t i = 0; i < items.size(); i++) {
    const nlohmann::json& r = ref["items"][i];
    ref_cut += r["truncated"].get<bool>();
    EXPECT_EQ(items[i].ctx, r["ctx"].get<std::vector<int>>()) << "item " << i;
    for (int j = 0; j < 4; j++) EXPECT_EQ(items[i].endings[j], r["endings"][j].get<std::vector<int>>()) << i << j;
    EXPECT_EQ(items[i].label, r["label"].get<int>());
  }
  EXPECT_EQ(cut, ref_cut);
  EXPECT_EQ(cut, 2);  // the sample's two long contexts
  EXPECT_LE(llm::hellaswag_positions(items), 64);
}

TEST(HellaSwagFit, EndingsThatCannotFitAndForeignTokensAreErrors) {
  llm::HellaSwagItem it;
  it.ctx = {1, 2, 3};
  it.endings = {std::vector<int>{4, 5, 6}, {7}, {8}, {9}};
  std::vector<llm::HellaSwagItem> items{it};
  EXPECT_LLM_ERROR(llm::fit_hellaswag(&items, 2, 100, "d.jsonl"), "d.jsonl", "item 0 ending 0 has 3 tokens");
  EXPECT_LLM_ERROR(llm::fit_hellaswag(&items, 8, 9, "d.jsonl"), "token 9 is outside the model's vocabulary of 9");
  // T = 3: a row may hold 4 tokens; the longest ending (3) leaves one context token, the last one
  EXPECT_EQ(llm::fit_hellaswag(&items, 3, 100, "d.jsonl"), 1);
  EXPECT_EQ(items[0].ctx, std::vector<int>{3});
  EXPECT_EQ(llm::hellaswag_positions(items), 3);
}

// ---- batching and scoring against a closed-form model ----

// loss(b, t) = target id / 16 (exact in float): an item's scores are then the sums / means of its ending token ids
// over 16. Checks what the rows must look like: x is the row's tokens shifted by one against y, every padding
// target is -100, the batch has the shape asked for (any_shape: no more rows than left, T = the longest row).
class IdLossModel final : public llm::TokenLossModel {
 public:
  IdLossModel(const std::vector<llm::HellaSwagItem>& items, int B, int T, bool any_shape = false)
      : items_(items), B_(B), T_(T), any_(any_shape) {}
  bool any_batch_shape() const override { return any_; }
  void token_losses(float* losses, const int* x, const int* y, int B, int T) override {
    const int rows_left = 4 * (int)items_.size() - row_;
    EXPECT_EQ(B, any_ ? std::min(B_, rows_left) : B_);
    int longest = 0;
    for (int r = row_; r < row_ + B && r < 4 * (int)items_.size(); r++)
      longest = std::max(longest, (int)(items_[r / 4].ctx.size() + items_[r / 4].endings[r % 4].size()) - 1);
    EXPECT_EQ(T, any_ ? longest : T_);
    for (int b = 0; b < B; b++, row_++) {
      std::vector<int> tokens;
      if (row_ < 4 * (int)items_.size()) {
        const llm::HellaSwagItem& it = items_[row_ / 4];
        tokens = it.ctx;
        tokens.insert(tokens.end(), it.endings[row_ % 4].begin(), it.endings[row_ % 4].end());
      }
      const int nc = tokens.empty() ? 0 : (int)items_[row_ / 4].ctx.size();
      for (int t = 0; t < T; t++) {
        const int i = b * T + t;
        const bool in_row = t + 1 < (int)tokens.size();
        if (in_row) EXPECT_EQ(x[i], tokens[t]) << "row " << row_ << " position " << t;
        const bool ending = in_row && t + 1 >= nc;
        EXPECT_EQ(y[i], ending ? tokens[t + 1] : -100) << "row " << row_ << " position " << t;
        losses[i] = y[i] == -100 ? 0.0f : y[i] / 16.0f;
      }
    }
  }

 private:
  const std::vector<llm::HellaSwagItem>& items_;
  int B_, T_;
  bool any_;
  int row_ = 0;
};

std::vector<llm::HellaSwagItem> id_items() {
  auto item = [](std::vector<int> ctx, std::array<std::vector<int>, 4> e, int label) {
    llm::HellaSwagItem it;
    it.ctx = std::move(ctx);
    it.endings = std::move(e);
    it.label = label;
    return it;
  };
  return {
      // sums 30, 8, 9, 20 -> acc picks 1; means 30, 4, 9, 5 -> acc_norm picks 1
      item({1, 2}, {std::vector<int>{30}, {4, 4}, {9}, {5, 5, 5, 5}}, 1),
      // sums 6, 6, 7, 8 -> tie: the lower ending (0); means 6, 3, 7, 8 -> 1
      item({3}, {std::vector<int>{6}, {3, 3}, {7}, {8}}, 0),
      // sums 10, 12, 2, 13 -> 2; means 10, 6, 2, 6.5 -> 2
      item({7, 7, 7}, {std::vector<int>{10}, {6, 6}, {2}, {6, 7}}, 3),
  };
}

TEST(HellaSwagScore, SumAndMeanOfTheEndingTokensForEveryBatchShape) {
  const std::vector<llm::HellaSwagItem> items = id_items();
  const int T = llm::hellaswag_positions(items) + 2;  // padding at the end of every row
  for (int B : {1, 3, 4, 5, 12, 16}) {  // rows per forward: items split across forwards, padded rows
    for (bool any_shape : {false, true}) {
      IdLossModel model(items, B, T, any_shape);
      const llm::HellaSwagResult r = llm::evaluate_hellaswag(model, items, B, T, false);
      ASSERT_EQ(r.items.size(), 3u);
      const std::array<double, 4> sum0{30 / 16.0, 8 / 16.0, 9 / 16.0, 20 / 16.0}, mean0{30 / 16.0, 4 / 16.0, 9 / 16.0,
                                                                                        5 / 16.0};
      EXPECT_EQ(r.items[0].sum, sum0) << "B " << B;
      EXPECT_EQ(r.items[0].mean, mean0) << "B " << B;
      EXPECT_EQ(r.items[0].pred, 1);
      EXPECT_EQ(r.items[0].pred_norm, 1);
      EXPECT_EQ(r.items[1].pred, 0);  // tie between endings 0 and 1: the first
      EXPECT_EQ(r.items[1].pred_norm, 1);
      EXPECT_EQ(r.items[2].pred, 2);
      EXPECT_EQ(r.items[2].pred_norm, 2);
      EXPECT_EQ(r.correct, 2);  // items 0 and 1
      EXPECT_EQ(r.correct_norm, 1);  // item 0
      EXPECT_EQ(llm::hellaswag_summary(r), "hellaswag: items 3 | acc 0.6667 | acc_norm 0.3333");
    }
  }
}

TEST(HellaSwagScore, RowsLongerThanTAreRefused) {
  const std::vector<llm::HellaSwagItem> items = id_items();
  IdLossModel model(items, 4, 3);
  EXPECT_LLM_ERROR(llm::evaluate_hellaswag(model, items, 4, 3, false), "more than T = 3");
}

// ---- both programs vs the HF reference ----

// Tolerance of each ending's SUM and MEAN against torch float64 on the same (fp16-stored) weights: 1e-5 relative.
// Both differ only by our fp32 rounding. A token's loss is log S - (x_target - x_max) with S = the sum over the 50257
// vocabulary entries of exp(x_v - x_max), u = 2^-24:
//  (1) S is the longest fp32 sum, all terms positive: a chain of at most n = 50257 additions (the portable build's
//      single lane; 3141 per lane with AVX-512, ~50 per thread + a 1024-way tree in the GPU kernel). Its terms all
//      differ (every wte row is random), so the roundings are independent and add in quadrature: sqrt(n)·u =
//      1.3e-5 relative in S = absolute in log S, worst layout; exp_approx's 2 ulp per term average out (< 1.2e-7).
//  (2) the logits: ~10 ops along a path (2 layers) with K <= 4C = 64 terms each, sqrt(10·64)·u = 1.5e-6 of the
//      terms' scale sum|h·w| ≈ 3: 4.5e-6 absolute in x_target and in x_max.
// In quadrature ≈ 1.5e-5 absolute per token against a loss >= 10.5 (the smallest mean in ref.json): 1.4e-6
// relative, less for an ending's sum of k tokens (independent errors grow as sqrt(k), the sum as k). 1e-5 is 7x that
// estimate; measured 5.6e-8 (gpt2_cpu, AVX-512) and 6.2e-8 (train_gpt2cu_cpu --precision fp32). A real defect (a
// token missing or extra, a target off by one, another truncation) moves a score by a whole token's loss, >= 2% of
// a sum. (Equal terms would not be independent: with zeroed unused wte rows gpt2_cpu was off by 2.8e-6, 50x more.)
constexpr double kRelTol = 1e-5;

struct ItemLine {
  int index, label, pred, pred_norm;
  std::array<double, 4> sum, mean;
};

std::vector<ItemLine> parse_items(const std::string& out) {
  std::vector<ItemLine> v;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("item ", 0) != 0) continue;
    std::istringstream w(line);
    ItemLine it{};
    std::string k;
    w >> k >> it.index >> k >> it.label >> k >> it.pred >> k >> it.pred_norm >> k;
    for (double& s : it.sum) w >> s;
    w >> k;
    for (double& m : it.mean) w >> m;
    EXPECT_FALSE(w.fail()) << line;
    v.push_back(it);
  }
  return v;
}

std::string last_line(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.rfind('\n') == std::string::npos ? 0 : s.rfind('\n') + 1);
}

std::string expected_summary(const nlohmann::json& ref) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "hellaswag: items %zu | acc %.4f | acc_norm %.4f", ref["items"].size(),
                ref["acc"].get<double>(), ref["acc_norm"].get<double>());
  return buf;
}

void expect_matches_reference(const Result& r) {
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json ref = reference();
  // a prediction may only flip when two endings are closer than the error: the fixture keeps them 1e-3 apart
  ASSERT_GT(ref["min_relative_gap"].get<double>(), 20 * kRelTol);
  const std::vector<ItemLine> got = parse_items(r.out);
  ASSERT_EQ(got.size(), ref["items"].size());
  for (size_t i = 0; i < got.size(); i++) {
    const nlohmann::json& e = ref["items"][i];
    EXPECT_EQ(got[i].index, (int)i);
    EXPECT_EQ(got[i].label, e["label"].get<int>());
    for (int j = 0; j < 4; j++) {
      const double s = e["sum"][j].get<double>(), m = e["mean"][j].get<double>();
      EXPECT_NEAR(got[i].sum[j], s, kRelTol * s) << "item " << i << " ending " << j;
      EXPECT_NEAR(got[i].mean[j], m, kRelTol * m) << "item " << i << " ending " << j;
    }
    EXPECT_EQ(got[i].pred, e["pred"].get<int>()) << "item " << i;
    EXPECT_EQ(got[i].pred_norm, e["pred_norm"].get<int>()) << "item " << i;
  }
  EXPECT_EQ(last_line(r.out), expected_summary(ref));
  EXPECT_NE(r.err.find("2 of 24 items are longer than the 64 positions"), std::string::npos) << r.err;
}

const std::string kCpu = GPT2_CPU_BIN;
const std::string kGpu = TRAIN_GPT2CU_BIN;

TEST(HellaSwagProgram, CpuMatchesTheReference) {
  // -b 5: 20 rows per forward, so items straddle forwards and the last forward is padded
  expect_matches_reference(run_in_dir(temp_dir(), kCpu + " hellaswag --model " + kModel + " --data " + kSample +
                                                      " --print-items -b 5 --threads 2"));
}

TEST(HellaSwagProgram, GpuOnTheCpuLayerMatchesTheReference) {
  expect_matches_reference(run_in_dir(temp_dir(), kGpu + " hellaswag --model " + kModel + " --data " + kSample +
                                                      " --print-items -b 3 --precision fp32"));
}

TEST(HellaSwagProgram, BadInputIsExit2WithAMessage) {
  const std::string dir = temp_dir();
  const std::string lines = std::string(kGood) + "\n" +
                            R"({"ctx": "c", "endings": ["a", "b", "c", "d"], "label": 7})" + "\n";
  host_test::write_bytes(dir + "/label.jsonl", std::vector<uint8_t>(lines.begin(), lines.end()));
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--model " + kModel + " --data " + dir + "/none.jsonl", dir + "/none.jsonl"},
      {"--model " + kModel + " --data " + dir + "/label.jsonl", "label.jsonl:2: label 7 is not in 0..3"},
      {"--model " + dir + "/none.bin --data " + kSample, dir + "/none.bin"},
      {"--model " + kModel + " --data " + kSample + " --max-items 0", "--max-items"},
      {"--model " + kModel + " --data " + kSample + " -b 0", "-b/--batch-items"},
      {"--data " + kSample, "--model"},
  };
  for (const std::string& bin : {kCpu, kGpu})
    for (const Case& c : cases) {
      const Result r = run_in_dir(dir, bin + " hellaswag " + c.args);
      EXPECT_EQ(r.code, 2) << bin << " " << c.args << "\n" << r.err;
      EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
      EXPECT_EQ(r.out.find("hellaswag: items"), std::string::npos) << r.out;
    }
}

// During training: the step-0 evaluation sees the fixture's weights, so its line equals the reference; later steps
// are logged too. The run's B x T (4 x 64) is the forward shape.
void expect_training_logs_hellaswag(const std::string& bin, const std::string& extra) {
  const std::string dir = temp_dir();
  host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(4096, 1));
  const Result r = run_in_dir(dir, bin + " train -e " + kModel + " -i train.bin -j '' -b 4 -t 64 -x 2 -l 1e-3 -s 0 " +
                                       "-o out --hellaswag " + kSample + " --hellaswag-every 2 " + extra);
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const nlohmann::json ref = reference();
  char step0[160];
  std::snprintf(step0, sizeof(step0), "step 0 hellaswag %.6f acc_norm %.6f items 24\n", ref["acc"].get<double>(),
                ref["acc_norm"].get<double>());
  const std::string log = slurp(dir + "/out/main.log");
  EXPECT_NE(log.find(step0), std::string::npos) << log;
  EXPECT_NE(log.find("step 2 hellaswag "), std::string::npos) << log;
  EXPECT_EQ(log.find("step 1 hellaswag "), std::string::npos) << log;
  EXPECT_NE(r.out.find(expected_summary(ref) + " (step 0)"), std::string::npos) << r.out;
  const std::string note = "2 of 24 items are longer than the 64 positions";  // said once, not per evaluation
  const size_t first = r.err.find(note);
  EXPECT_NE(first, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(note, first + 1), std::string::npos) << r.err;
}

TEST(HellaSwagProgram, CpuTrainingLogsHellaSwag) { expect_training_logs_hellaswag(kCpu, "--threads 2"); }
TEST(HellaSwagProgram, GpuOnTheCpuLayerTrainingLogsHellaSwag) {
  expect_training_logs_hellaswag(kGpu, "--precision fp32");
}

// --resume keeps --hellaswag and its cadence (saved with the run's settings) unless given again.
TEST(HellaSwagProgram, ResumeKeepsHellaSwag) {
  const std::string dir = temp_dir();
  host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(4096, 1));
  const std::string run = kCpu + " train -e " + kModel + " -i train.bin -j '' -b 4 -t 64 -s 0 -o out --threads 2 ";
  Result r = run_in_dir(dir, run + "-x 2 --hellaswag " + kSample + " --hellaswag-every 2");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_in_dir(dir, run + "--resume -x 3");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string log = slurp(dir + "/out/main.log");
  EXPECT_NE(log.find("step 3 hellaswag "), std::string::npos) << log;  // the resumed run's last step
  EXPECT_EQ(log.find("step 2 hellaswag ", log.find("step 2 hellaswag ") + 1), std::string::npos) << log;  // once
}

TEST(HellaSwagProgram, TrainingRefusesABadFileBeforeWritingAnything) {
  const std::string dir = temp_dir();
  host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(4096, 1));
  const std::string bad = std::string(kGood) + "\n{\"ctx\": 3}\n";
  host_test::write_bytes(dir + "/bad.jsonl", std::vector<uint8_t>(bad.begin(), bad.end()));
  for (const std::string& bin : {kCpu, kGpu}) {
    const Result r = run_in_dir(dir, bin + " train -e " + kModel + " -i train.bin -j '' -b 4 -t 64 -x 2 -s 0 -o out " +
                                         "--hellaswag bad.jsonl");
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("error: bad.jsonl:2: field \"ctx\" must be a string"), std::string::npos) << r.err;
    EXPECT_FALSE(host_test::exists(dir + "/out/main.log"));
  }
}

}  // namespace
