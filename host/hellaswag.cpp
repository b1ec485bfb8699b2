#include "host/hellaswag.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/progress.h"
#include "host/token_shard.h"  // read_file_bytes
#include "host/tokenizer.h"

namespace llm {

namespace {

// obj[key] as a string, or an error naming the line and the field.
std::string string_field(const nlohmann::json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(where, ": missing field \"", key, "\"");
  if (!it->is_string()) fail(where, ": field \"", key, "\" must be a string (got ", it->type_name(), ")");
  return it->get<std::string>();
}

int label_field(const nlohmann::json& obj, const std::string& where) {
  auto it = obj.find("label");
  if (it == obj.end()) fail(where, ": missing field \"label\"");
  if (it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v < 0 || v >= kHellaSwagEndings) fail(where, ": label ", v, " is not in 0..", kHellaSwagEndings - 1);
    return static_cast<int>(v);
  }
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    if (s.size() == 1 && s[0] >= '0' && s[0] < '0' + kHellaSwagEndings) return s[0] - '0';
    fail(where, ": label \"", s, "\" is not in 0..", kHellaSwagEndings - 1);
  }
  fail(where, ": field \"label\" must be an integer 0..", kHellaSwagEndings - 1, " (got ", it->type_name(), ")");
}

}  // namespace

HellaSwagText parse_hellaswag_line(const std::string& line, const std::string& where) {
  nlohmann::json obj;
  try {
    obj = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON (", e.what(), ")");
  }
  if (!obj.is_object()) fail(where, ": expected a JSON object, got ", obj.type_name());
  HellaSwagText t;
  t.ctx = string_field(obj, "ctx", where);
  if (t.ctx.empty()) fail(where, ": empty \"ctx\" (the first ending token needs a context token before it)");
  auto it = obj.find("endings");
  if (it == obj.end()) fail(where, ": missing field \"endings\"");
  if (!it->is_array() || it->size() != kHellaSwagEndings)
    fail(where, ": \"endings\" must be an array of ", kHellaSwagEndings, " strings (got ",
         it->is_array() ? std::to_string(it->size()) + " elements" : std::string(it->type_name()), ")");
  for (int j = 0; j < kHellaSwagEndings; j++) {
    const nlohmann::json& e = (*it)[j];
    if (!e.is_string()) fail(where, ": ending ", j, " must be a string (got ", e.type_name(), ")");
    t.endings[j] = e.get<std::string>();
    if (t.endings[j].empty()) fail(where, ": ending ", j, " is empty");
  }
  t.label = label_field(obj, where);
  return t;
}

std::vector<HellaSwagItem> load_hellaswag(const std::string& path, const Tokenizer& tok, int max_items) {
  const std::string bytes = read_file_bytes(path);  // llm::Error naming the file when unreadable
  std::vector<HellaSwagItem> items;
  std::istringstream in(bytes);
  int line_no = 0;
  for (std::string line; (max_items < 0 || (int)items.size() < max_items) && std::getline(in, line);) {
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const HellaSwagText t = parse_hellaswag_line(line, path + ":" + std::to_string(line_no));
    HellaSwagItem item;
    item.ctx = tok.encode(t.ctx, SpecialMode::kAsText);
    for (int j = 0; j < kHellaSwagEndings; j++) item.endings[j] = tok.encode(" " + t.endings[j], SpecialMode::kAsText);
    item.label = t.label;
    items.push_back(std::move(item));
  }
  if (items.empty()) fail(path, ": no HellaSwag items (expected JSON lines with ctx, endings, label)");
  return items;
}

int fit_hellaswag(std::vector<HellaSwagItem>* items, int T, int vocab_size, const std::string& source) {
  int cut = 0;
  for (size_t i = 0; i < items->size(); i++) {
    HellaSwagItem& it = (*items)[i];
    size_t longest = 0;
    for (int j = 0; j < kHellaSwagEndings; j++) {
      const std::vector<int>& e = it.endings[j];
      if ((int)e.size() > T)
        fail(source, ": item ", i, " ending ", j, " has ", e.size(), " tokens; with one context token in front it "
             "needs ", e.size(), " positions, more than the ", T, " available (a larger -t or a model with a longer "
             "context)");
      longest = std::max(longest, e.size());
      for (int id : e)
        if (id >= vocab_size) fail(source, ": token ", id, " is outside the model's vocabulary of ", vocab_size);
    }
    for (int id : it.ctx)
      if (id >= vocab_size) fail(source, ": token ", id, " is outside the model's vocabulary of ", vocab_size);
    const size_t keep = static_cast<size_t>(T) + 1 - longest;  // context tokens that fit beside the longest ending
    if (it.ctx.size() > keep) {
      it.ctx.erase(it.ctx.begin(), it.ctx.end() - keep);
      cut++;
    }
  }
  if (cut > 0)
    std::fprintf(stderr, "hellaswag: %d of %zu items are longer than the %d positions of a forward; their contexts "
                 "are cut from the left (the endings are kept whole)\n", cut, items->size(), T);
  return cut;
}

int hellaswag_positions(const std::vector<HellaSwagItem>& items) {
  size_t longest = 0;
  for (const HellaSwagItem& it : items)
    for (const std::vector<int>& e : it.endings) longest = std::max(longest, it.ctx.size() + e.size());
  return static_cast<int>(longest) - 1;
}

int argmin4(const std::array<double, kHellaSwagEndings>& v) {
  int best = 0;
  for (int j = 1; j < kHellaSwagEndings; j++)
    if (v[j] < v[best]) best = j;
  return best;
}

namespace {

// Writes row r (item r/4, ending r%4) into x, y (T each): x = tokens[0..n-1), y = tokens[1..n) where tokens is the
// context followed by the ending; y is -100 except where it holds an ending token; padding x = 0, y = -100.
void fill_row(int* x, int* y, const HellaSwagItem& it, int ending, int T) {
  const std::vector<int>& e = it.endings[ending];
  const int nc = static_cast<int>(it.ctx.size()), n = nc + static_cast<int>(e.size());
  for (int t = 0; t < T; t++) {
    x[t] = t < n - 1 ? (t < nc ? it.ctx[t] : e[t - nc]) : 0;
    y[t] = t + 1 >= nc && t + 1 < n ? e[t + 1 - nc] : -100;
  }
}

// Positions the longest of rows [r0, r1) needs.
int batch_positions(const std::vector<HellaSwagItem>& items, int64_t r0, int64_t r1) {
  size_t longest = 2;
  for (int64_t row = r0; row < r1; row++) {
    const HellaSwagItem& it = items[row / kHellaSwagEndings];
    longest = std::max(longest, it.ctx.size() + it.endings[row % kHellaSwagEndings].size());
  }
  return static_cast<int>(longest) - 1;
}

}  // namespace

HellaSwagResult evaluate_hellaswag(TokenLossModel& model, const std::vector<HellaSwagItem>& items, int B_max,
                                   int T_max, bool progress) {
  if (B_max < 1 || T_max < 1) fail("hellaswag: batch shape ", B_max, "x", T_max, " must be positive");
  if (hellaswag_positions(items) > T_max)
    fail("hellaswag: a row needs ", hellaswag_positions(items), " positions, more than T = ", T_max,
         " (fit_hellaswag)");
  const auto start = std::chrono::steady_clock::now();
  const int64_t rows = static_cast<int64_t>(items.size()) * kHellaSwagEndings;
  std::vector<int> x(static_cast<size_t>(B_max) * T_max), y(x.size());
  std::vector<float> losses(x.size());
  HellaSwagResult r;
  r.items.resize(items.size());
  ItemProgress bar("hellaswag", static_cast<int64_t>(items.size()), progress);
  for (int64_t r0 = 0; r0 < rows; r0 += B_max) {
    const bool fit = model.any_batch_shape();
    const int B = fit ? static_cast<int>(std::min<int64_t>(B_max, rows - r0)) : B_max;
    const int T = fit ? batch_positions(items, r0, r0 + B) : T_max;
    for (int b = 0; b < B; b++) {
      const int64_t row = r0 + b;
      if (row < rows) {
        fill_row(&x[(size_t)b * T], &y[(size_t)b * T], items[row / kHellaSwagEndings], row % kHellaSwagEndings, T);
      } else {
        std::fill(x.begin() + (size_t)b * T, x.begin() + (size_t)(b + 1) * T, 0);
        std::fill(y.begin() + (size_t)b * T, y.begin() + (size_t)(b + 1) * T, -100);
      }
    }
    model.token_losses(losses.data(), x.data(), y.data(), B, T);
    for (int b = 0; b < B && r0 + b < rows; b++) {
      const int64_t row = r0 + b;
      HellaSwagScore& s = r.items[row / kHellaSwagEndings];
      const int j = row % kHellaSwagEndings;
      double sum = 0.0;
      int count = 0;
      for (int t = 0; t < T; t++)
        if (y[(size_t)b * T + t] != -100) {
          sum += losses[(size_t)b * T + t];
          count++;
        }
      s.sum[j] = sum;
      s.mean[j] = sum / count;  // count >= 1: endings are never empty
    }
    bar.update(std::min<int64_t>(r0 + B_max, rows) / kHellaSwagEndings);
  }
  for (size_t i = 0; i < items.size(); i++) {
    HellaSwagScore& s = r.items[i];
    s.pred = argmin4(s.sum);
    s.pred_norm = argmin4(s.mean);
    r.correct += s.pred == items[i].label;
    r.correct_norm += s.pred_norm == items[i].label;
  }
  bar.finish(static_cast<int64_t>(items.size()));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::string hellaswag_summary(const HellaSwagResult& r) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "hellaswag: items %zu | acc %.4f | acc_norm %.4f", r.items.size(), r.acc(),
                r.acc_norm());
  return buf;
}

std::string hellaswag_item_line(int index, int label, const HellaSwagScore& s) {
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "item %d label %d pred %d pred_norm %d sum %.9g %.9g %.9g %.9g mean %.9g %.9g %.9g %.9g", index,
                label, s.pred, s.pred_norm, s.sum[0], s.sum[1], s.sum[2], s.sum[3], s.mean[0], s.mean[1], s.mean[2],
                s.mean[3]);
  return buf;
}

}  // namespace llm
