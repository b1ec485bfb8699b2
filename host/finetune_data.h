// finetune_data.h — the book's fine-tuning data path (chapters 6 and 7): labelled-text CSV/TSV, the
// instruction JSON, the Alpaca prompt template, the instruction collate rule, the 85/10/5 split, and the
// scores used to judge generated responses (exact match, ROUGE-L).
//
// Why here (host/): both programs (CPU reference and GPU trainer) read the same data the same way.
// Every reader throws llm::Error naming the file and the line (CSV) or line:column (JSON) of the problem.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llm {

// ---- classification data (chapter 6) ----------------------------------------------------------------------

struct LabeledText {
  int label = 0;      // index into the class list
  std::string text;
  int line = 0;       // 1-based line of the record in its file (for messages)
};

// Reads an RFC-4180 file with a header row naming a label column and a text column (default "Label", "Text";
// the column order may be either). sep is ',' (CSV) or '\t' (TSV). Fields may be quoted ("...", "" = one quote,
// separators and newlines allowed inside quotes). Labels must be one of `classes` (e.g. {"0","1"} or
// {"ham","spam"}); label index = position in `classes`. Errors (llm::Error "<path>:<line>: ..."):
// unterminated quote, text after a closing quote, wrong number of fields, label not in the class set, empty text,
// missing header columns, empty file.
std::vector<LabeledText> read_labeled_csv(const std::string& path, const std::vector<std::string>& classes,
                                          char sep = ',', const std::string& label_column = "Label",
                                          const std::string& text_column = "Text");
// The same parser on an in-memory string (name used in messages).
std::vector<LabeledText> parse_labeled_csv(const std::string& content, const std::string& name,
                                           const std::vector<std::string>& classes, char sep = ',',
                                           const std::string& label_column = "Label",
                                           const std::string& text_column = "Text");
// Splits RFC-4180 content into records of fields; record_lines[i] = 1-based starting line of record i.
std::vector<std::vector<std::string>> parse_csv_records(const std::string& content, const std::string& name, char sep,
                                                        std::vector<int>* record_lines = nullptr);

// The book's SpamDataset rule: truncate ids to max_length, right-pad with pad_id (50256) to max_length.
std::vector<int> pad_to_length(std::vector<int> ids, int max_length, int pad_id = 50256);

// ---- instruction data (chapter 7) ---------------------------------------------------------------------------

struct InstructionEntry {
  std::string instruction, input, output;
};

// Reads a JSON array of objects with string keys "instruction", "input" (may be missing = "") and "output".
// Malformed JSON -> llm::Error "<path>: malformed JSON at line L, column C (byte B): ...".
std::vector<InstructionEntry> read_instruction_json(const std::string& path);
std::vector<InstructionEntry> parse_instruction_json(const std::string& content, const std::string& name);
// Writes entries plus their model responses as a JSON array (keys instruction, input, output, model_response),
// 4-space indented like the book's instruction-data-with-response.json; atomic (tmp + rename).
void write_instruction_responses(const std::string& path, const std::vector<InstructionEntry>& entries,
                                 const std::vector<std::string>& responses);

// The book's format_input(): the Alpaca prompt without the response part.
std::string format_input(const InstructionEntry& e);
// Training text = format_input(e) + "\n\n### Response:\n" + output.
std::string format_training_text(const InstructionEntry& e);
extern const char* const kResponseHeader;  // "\n\n### Response:\n"

// The book's split, in file order: train = first int(0.85 n), test = next int(0.1 n), validation = the rest.
struct InstructionSplit {
  std::vector<InstructionEntry> train, test, val;
};
InstructionSplit split_instructions(const std::vector<InstructionEntry>& all);

// The book's custom_collate_fn. items are token sequences; for each: append one pad_id, right-pad with pad_id to
// (1 + longest item), inputs = padded[:-1], targets = padded[1:], then every target equal to pad_id after the
// first one in that row becomes ignore_index. allowed_max_length > 0 truncates both to that length.
// prompt_lengths (optional, one per item): mask the prompt too (targets[0 .. prompt_len-1) = ignore_index, the
// book's exercise 7.2). Output row-major (B, T) with T = the collated length.
struct CollatedBatch {
  int B = 0, T = 0;
  std::vector<int> inputs, targets;
};
CollatedBatch collate_instructions(const std::vector<std::vector<int>>& items, int pad_id = 50256,
                                   int ignore_index = -100, int allowed_max_length = 0,
                                   const std::vector<int>* prompt_lengths = nullptr);

// ---- response scores ----------------------------------------------------------------------------------------

// Splits on ASCII whitespace (space, \t, \n, \r, \f, \v); no lower-casing, no punctuation stripping.
std::vector<std::string> whitespace_tokens(const std::string& s);
// ROUGE-L F1 on whitespace tokens: LCS length l, P = l/|cand|, R = l/|ref|, F1 = 2PR/(P+R); 0 when l == 0
// (including either side empty; both empty -> 1).
double rouge_l_f1(const std::string& candidate, const std::string& reference);
// Exact match after trimming surrounding whitespace.
bool exact_match(const std::string& candidate, const std::string& reference);

}  // namespace llm
