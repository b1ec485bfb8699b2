// finetune_data.cpp — see finetune_data.h.
#include "host/finetune_data.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "host/binary_io.h"
#include "host/error.h"

namespace llm {

namespace {

std::string read_whole_file(const std::string& path) {
  InFile f(path);
  std::string s(f.size(), '\0');
  if (!s.empty()) f.read(&s[0], s.size(), "file contents");
  return s;
}

}  // namespace

// ---- CSV ------------------------------------------------------------------------------------------------------

std::vector<std::vector<std::string>> parse_csv_records(const std::string& in, const std::string& name, char sep,
                                                        std::vector<int>* record_lines) {
  std::vector<std::vector<std::string>> records;
  if (record_lines) record_lines->clear();
  size_t i = 0;
  int line = 1;
  const size_t n = in.size();
  while (i < n) {
    const int start_line = line;
    std::vector<std::string> fields;
    std::string field;
    bool end_of_record = false;
    while (!end_of_record) {
      field.clear();
      if (i < n && in[i] == '"') {  // quoted field: "" is a literal quote; separators/newlines allowed
        const int quote_line = line;
        i++;
        for (;;) {
          if (i >= n) fail(name, ":", quote_line, ": unterminated quoted field");
          const char c = in[i++];
          if (c == '"') {
            if (i < n && in[i] == '"') { field += '"'; i++; continue; }
            break;
          }
          if (c == '\n') line++;
          field += c;
        }
        if (i < n && in[i] != sep && in[i] != '\n' && in[i] != '\r')
          fail(name, ":", line, ": unexpected character '", in[i], "' after a closing quote");
      } else {  // plain field: runs to the separator or the end of the line
        while (i < n && in[i] != sep && in[i] != '\n' && in[i] != '\r') {
          if (in[i] == '"') fail(name, ":", line, ": quote inside an unquoted field (quote the whole field)");
          field += in[i++];
        }
      }
      fields.push_back(field);
      if (i < n && in[i] == sep) { i++; continue; }
      // end of record: \n, \r\n or end of input
      if (i < n && in[i] == '\r') i++;
      if (i < n && in[i] == '\n') { i++; line++; }
      end_of_record = true;
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    records.push_back(std::move(fields));
    if (record_lines) record_lines->push_back(start_line);
  }
  return records;
}

std::vector<LabeledText> parse_labeled_csv(const std::string& content, const std::string& name,
                                           const std::vector<std::string>& classes, char sep,
                                           const std::string& label_column, const std::string& text_column) {
  if (classes.size() < 2) fail(name, ": need at least 2 classes, got ", classes.size());
  std::vector<int> lines;
  const auto records = parse_csv_records(content, name, sep, &lines);
  if (records.empty()) fail(name, ": empty file (expected a header row '", label_column, sep, text_column, "')");
  const auto& header = records[0];
  int label_col = -1, text_col = -1;
  for (size_t c = 0; c < header.size(); c++) {
    if (header[c] == label_column) label_col = (int)c;
    if (header[c] == text_column) text_col = (int)c;
  }
  if (label_col < 0 || text_col < 0)
    fail(name, ":1: header must name columns '", label_column, "' and '", text_column, "'");
  std::vector<LabeledText> out;
  for (size_t r = 1; r < records.size(); r++) {
    const auto& rec = records[r];
    if (rec.size() != header.size())
      fail(name, ":", lines[r], ": expected ", header.size(), " fields, found ", rec.size());
    const std::string& lab = rec[label_col];
    auto it = std::find(classes.begin(), classes.end(), lab);
    if (it == classes.end()) {
      std::string set;
      for (const auto& c : classes) set += (set.empty() ? "" : ", ") + c;
      fail(name, ":", lines[r], ": label '", lab, "' is not in the class set {", set, "}");
    }
    if (rec[text_col].empty()) fail(name, ":", lines[r], ": empty text");
    out.push_back({(int)(it - classes.begin()), rec[text_col], lines[r]});
  }
  if (out.empty()) fail(name, ": no records after the header");
  return out;
}

std::vector<LabeledText> read_labeled_csv(const std::string& path, const std::vector<std::string>& classes, char sep,
                                          const std::string& label_column, const std::string& text_column) {
  return parse_labeled_csv(read_whole_file(path), path, classes, sep, label_column, text_column);
}

std::vector<int> pad_to_length(std::vector<int> ids, int max_length, int pad_id) {
  if (max_length <= 0) fail("pad_to_length: max length ", max_length, " must be positive");
  ids.resize(max_length, pad_id);  // truncates longer sequences (the book truncates val/test to the train max)
  return ids;
}

// ---- instruction JSON --------------------------------------------------------------------------------------

std::vector<InstructionEntry> parse_instruction_json(const std::string& content, const std::string& name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(content);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based (the byte after the last one read); turn it into line:column.
    const size_t byte = e.byte > 0 ? std::min<size_t>(e.byte - 1, content.size()) : 0;
    int line = 1;
    size_t line_start = 0;
    for (size_t k = 0; k < byte; k++)
      if (content[k] == '\n') { line++; line_start = k + 1; }
    fail(name, ": malformed JSON at line ", line, ", column ", byte - line_start + 1, " (byte ", byte, ")");
  }
  if (!j.is_array()) fail(name, ": expected a JSON array of {instruction, input, output} objects");
  std::vector<InstructionEntry> out;
  for (size_t k = 0; k < j.size(); k++) {
    const auto& o = j[k];
    if (!o.is_object()) fail(name, ": entry ", k, " is not an object");
    auto get = [&](const char* key, bool required) -> std::string {
      auto it = o.find(key);
      if (it == o.end()) {
        if (required) fail(name, ": entry ", k, " has no \"", key, "\"");
        return "";
      }
      if (!it->is_string()) fail(name, ": entry ", k, ": \"", key, "\" is not a string");
      return it->get<std::string>();
    };
    InstructionEntry e{get("instruction", true), get("input", false), get("output", true)};
    if (e.instruction.empty()) fail(name, ": entry ", k, " has an empty instruction");
    out.push_back(std::move(e));
  }
  if (out.empty()) fail(name, ": no entries");
  return out;
}

std::vector<InstructionEntry> read_instruction_json(const std::string& path) {
  return parse_instruction_json(read_whole_file(path), path);
}

void write_instruction_responses(const std::string& path, const std::vector<InstructionEntry>& entries,
                                 const std::vector<std::string>& responses) {
  if (entries.size() != responses.size()) fail("write_instruction_responses: ", entries.size(), " entries but ",
                                               responses.size(), " responses");
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (size_t k = 0; k < entries.size(); k++) {
    nlohmann::ordered_json o;
    o["instruction"] = entries[k].instruction;
    o["input"] = entries[k].input;
    o["output"] = entries[k].output;
    o["model_response"] = responses[k];
    arr.push_back(std::move(o));
  }
  // invalid UTF-8 in a generated response is replaced (U+FFFD) rather than failing the whole run
  const std::string text = arr.dump(4, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

const char* const kResponseHeader = "\n\n### Response:\n";

std::string format_input(const InstructionEntry& e) {
  std::string s =
      "Below is an instruction that describes a task. Write a response that appropriately completes the request."
      "\n\n### Instruction:\n" + e.instruction;
  if (!e.input.empty()) s += "\n\n### Input:\n" + e.input;
  return s;
}

std::string format_training_text(const InstructionEntry& e) { return format_input(e) + kResponseHeader + e.output; }

InstructionSplit split_instructions(const std::vector<InstructionEntry>& all) {
  const size_t n = all.size();
  const size_t n_train = (size_t)(0.85 * (double)n), n_test = (size_t)(0.1 * (double)n);  // int() like the book
  InstructionSplit s;
  s.train.assign(all.begin(), all.begin() + n_train);
  s.test.assign(all.begin() + n_train, all.begin() + n_train + n_test);
  s.val.assign(all.begin() + n_train + n_test, all.end());
  return s;
}

CollatedBatch collate_instructions(const std::vector<std::vector<int>>& items, int pad_id, int ignore_index,
                                   int allowed_max_length, const std::vector<int>* prompt_lengths) {
  if (items.empty()) fail("collate: empty batch");
  if (prompt_lengths && prompt_lengths->size() != items.size())
    fail("collate: ", items.size(), " items but ", prompt_lengths->size(), " prompt lengths");
  size_t longest = 0;
  for (const auto& it : items) longest = std::max(longest, it.size() + 1);  // +1: the appended end-of-text
  int T = (int)longest - 1;  // inputs = padded[:-1]
  if (allowed_max_length > 0) T = std::min(T, allowed_max_length);
  if (T <= 0) fail("collate: every item is empty");
  CollatedBatch b;
  b.B = (int)items.size();
  b.T = T;
  b.inputs.assign((size_t)b.B * T, pad_id);
  b.targets.assign((size_t)b.B * T, pad_id);
  for (int r = 0; r < b.B; r++) {
    std::vector<int> padded = items[r];
    padded.resize(longest, pad_id);  // one end-of-text, then padding, all the same id
    int* in = &b.inputs[(size_t)r * T];
    int* tg = &b.targets[(size_t)r * T];
    bool seen_pad = false;
    for (int t = 0; t < T; t++) {
      in[t] = padded[t];
      tg[t] = padded[t + 1];
      if (tg[t] == pad_id) {  // keep the first pad target (the model must learn to emit end-of-text)
        if (seen_pad) tg[t] = ignore_index;
        seen_pad = true;
      }
    }
    if (prompt_lengths)  // exercise 7.2: the prompt's own tokens are not predicted
      for (int t = 0; t < std::min((*prompt_lengths)[r] - 1, T); t++) tg[t] = ignore_index;
  }
  return b;
}

// ---- scores ------------------------------------------------------------------------------------------------

std::vector<std::string> whitespace_tokens(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      if (!cur.empty()) out.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

double rouge_l_f1(const std::string& candidate, const std::string& reference) {
  const auto a = whitespace_tokens(candidate), b = whitespace_tokens(reference);
  if (a.empty() && b.empty()) return 1.0;
  if (a.empty() || b.empty()) return 0.0;
  // LCS by dynamic programming, one row at a time
  std::vector<int> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); i++) {
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const double l = prev[b.size()];
  if (l == 0) return 0.0;
  const double p = l / a.size(), r = l / b.size();
  return 2 * p * r / (p + r);
}

bool exact_match(const std::string& candidate, const std::string& reference) {
  auto trim = [](const std::string& s) {
    const char* ws = " \t\n\r\f\v";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
  };
  return trim(candidate) == trim(reference);
}

}  // namespace llm
