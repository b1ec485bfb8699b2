// hellaswag.h — HellaSwag multiple-choice evaluation, shared by gpt2_cpu and train_gpt2cu (llm.c parity).
//
// Why here: both programs must read the same file, tokenize and score it the same way and print the same line;
// only "run the model" differs, so a program supplies a TokenLossModel (per-token losses of a batch) and the
// rest lives once in this file.
//
// Data: the dataset's own JSONL (hellaswag_val.jsonl from github.com/rowanz/hellaswag, data/): one JSON object a
// line with "ctx" (string), "endings" (4 strings) and "label" (0..3; other fields are ignored).
// Tokens (llm.c dev/data/hellaswag.py): the context as is, each ending with a space in front (" " + ending), so the
// ending's first word is tokenized as a continuation.
// Rows: item i, ending j is row 4i+j = context tokens followed by ending tokens. The model reads the row without its
// last token (x) and predicts the next token at every position (y = x shifted by one); only the predictions of
// ending tokens count (other targets are -100 = ignored). Rows of several items share one forward of B rows;
// shorter rows are padded on the right (causal attention never lets a padding token reach an earlier position).
// A row longer than T+1 tokens loses tokens from the left of its context (said once per file); an ending that
// does not fit with one context token in front is an error.
// Scores: per row the SUM of the ending tokens' losses and their MEAN; acc picks the ending with the lowest sum,
// acc_norm the lowest mean (llm.c's reported number); ties go to the lower ending index.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace llm {

class Tokenizer;

// What a program provides: per-token cross-entropy losses of one batch.
class TokenLossModel {
 public:
  virtual ~TokenLossModel() = default;
  // losses (B,T): -log p(y[b,t] | x[b,0..t]) for every position, 0 where y is -100. x, y: (B,T) token ids.
  virtual void token_losses(float* losses, const int* x, const int* y, int B, int T) = 0;
  // false: every batch is exactly the B x T asked for (device buffers are allocated for it); true: a batch may be
  // smaller (T = its longest row, B = the rows left at the end), which saves the padding's compute (CPU reference).
  virtual bool any_batch_shape() const { return false; }
};

constexpr int kHellaSwagEndings = 4;

struct HellaSwagItem {
  std::vector<int> ctx;                                   // context tokens (after any left truncation)
  std::array<std::vector<int>, kHellaSwagEndings> endings;  // " " + ending, tokenized
  int label = 0;                                          // the right ending, 0..3
};

// One JSONL line -> its fields (text not yet tokenized). Throws llm::Error naming `where` (e.g. "file:12") on
// malformed JSON, a missing/mistyped field, not exactly 4 endings, an empty context or ending, or a label outside
// 0..3 (an integer, or a string holding one digit as some copies of the dataset have it).
struct HellaSwagText {
  std::string ctx;
  std::array<std::string, kHellaSwagEndings> endings;
  int label = 0;
};
HellaSwagText parse_hellaswag_line(const std::string& line, const std::string& where);

// Reads and tokenizes up to max_items items (-1 = all) of a JSONL file; blank lines are skipped. Throws llm::Error
// for an unreadable or empty file and for any bad line (named by its line number).
std::vector<HellaSwagItem> load_hellaswag(const std::string& path, const Tokenizer& tok, int max_items = -1);

// Makes every row fit a forward of T positions (T+1 tokens): contexts are cut from the left. Throws llm::Error when
// an ending alone needs more than T positions, or a token is not below vocab_size (the model's vocabulary).
// Returns how many items were cut. `source` names the data in messages.
int fit_hellaswag(std::vector<HellaSwagItem>* items, int T, int vocab_size, const std::string& source);

// The number of positions the longest row needs (max over rows of ctx + ending tokens, minus one).
int hellaswag_positions(const std::vector<HellaSwagItem>& items);

struct HellaSwagScore {
  std::array<double, kHellaSwagEndings> sum{}, mean{};  // per ending: sum / mean of the ending tokens' losses
  int pred = 0, pred_norm = 0;                        // argmin of sum / of mean
};

struct HellaSwagResult {
  std::vector<HellaSwagScore> items;
  int correct = 0, correct_norm = 0;
  double seconds = 0;
  double acc() const { return items.empty() ? 0.0 : (double)correct / items.size(); }
  double acc_norm() const { return items.empty() ? 0.0 : (double)correct_norm / items.size(); }
};

// The argmin of four scores (first one on ties) and the score of an item from its rows' per-token losses.
int argmin4(const std::array<double, kHellaSwagEndings>& v);

// Scores every item with forwards of B rows x T positions (items must fit T: fit_hellaswag; a model that takes
// any_batch_shape gets T = the batch's longest row). progress: a bar with items/s and ETA on stderr.
HellaSwagResult evaluate_hellaswag(TokenLossModel& model, const std::vector<HellaSwagItem>& items, int B_max,
                                   int T_max, bool progress);

// "hellaswag: items N | acc A | acc_norm B" (fractions, 4 decimals).
std::string hellaswag_summary(const HellaSwagResult& r);
// "item I label L pred P pred_norm Q sum s0 s1 s2 s3 mean m0 m1 m2 m3" (%.9g): the --print-items lines.
std::string hellaswag_item_line(int index, int label, const HellaSwagScore& s);

}  // namespace llm
