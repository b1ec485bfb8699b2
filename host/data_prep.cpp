// data_prep.cpp — `tokenizer prepare`: documents -> tokens -> llm.c shards (see data_prep.h).
#include "host/data_prep.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/token_shard.h"

namespace llm {

// ---------------------------------------------------------------------------------------------
// StreamingEncoder

namespace {
constexpr size_t kEncodeBatch = 1u << 20;  // encode once this much text is pending
constexpr std::string_view kEotText = "<|endoftext|>";
}  // namespace

StreamingEncoder::StreamingEncoder(const Tokenizer& tok, SpecialMode mode, int threads)
    : tok_(tok), mode_(mode), threads_(threads) {}

void StreamingEncoder::encode_prefix(size_t n, std::vector<int>& out) {
  std::string_view text(pending_.data(), n);
  if (mode_ == SpecialMode::kDisallowed) {
    size_t hit = text.find(kEotText);
    if (hit != std::string_view::npos)
      fail("input contains the special token <|endoftext|> at byte offset ", base_ + hit,
           " (disallowed by default; allow it or encode it as text)");
  }
  std::vector<int> ids = tok_.encode_parallel(text, mode_, threads_);
  out.insert(out.end(), ids.begin(), ids.end());
  pending_.erase(0, n);
  base_ += n;
}

void StreamingEncoder::feed(std::string_view chunk, std::vector<int>& out) {
  pending_.append(chunk.data(), chunk.size());
  if (pending_.size() < kEncodeBatch) return;
  // the last safe point before the final byte (is_safe_split needs the byte after the cut); the
  // text before scanned_ was already searched (a point's safety depends on 4 bytes either side)
  size_t lo = scanned_ > 8 ? scanned_ - 8 : 0;
  size_t p = find_safe_split(pending_, lo, pending_.size() - 1);
  if (p > 0) {
    encode_prefix(p, out);
    scanned_ = 0;
  } else {
    scanned_ = pending_.size();
  }
}

void StreamingEncoder::finish(std::vector<int>& out) {
  if (!pending_.empty()) encode_prefix(pending_.size(), out);
}

// ---------------------------------------------------------------------------------------------
// Documents: a visitor sees begin_doc / text pieces / end_doc for every document of every input.

namespace {

struct DocVisitor {
  virtual ~DocVisitor() = default;
  virtual void begin_doc() = 0;
  virtual void text(std::string_view piece) = 0;
  virtual void end_doc() = 0;
  virtual void bytes_read(size_t n) = 0;
  virtual void skipped_line(const std::string& where, const std::string& why) = 0;
};

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const char* suf) {
  size_t n = std::strlen(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

void list_txt(const std::string& dir, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail(dir, ": cannot open directory (", std::strerror(errno), ")");
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string p = dir + "/" + n;
    if (is_dir(p)) list_txt(p, out);
    else if (ends_with(n, ".txt")) out.push_back(p);
  }
}

struct Input {
  std::string path;
  bool jsonl;
};

std::vector<Input> expand_inputs(const PrepareOptions& opt) {
  std::vector<Input> out;
  if (opt.inputs.empty()) fail("prepare: no input files given");
  for (const std::string& in : opt.inputs) {
    struct stat st;
    if (::stat(in.c_str(), &st) != 0) fail(in, ": cannot open (", std::strerror(errno), ")");
    if (S_ISDIR(st.st_mode)) {
      std::vector<std::string> files;
      list_txt(in, files);
      if (files.empty()) fail(in, ": directory contains no .txt files");
      for (auto& f : files) out.push_back({f, opt.format == PrepareOptions::Format::kJsonl});
    } else {
      bool jsonl = opt.format == PrepareOptions::Format::kJsonl ||
                   (opt.format == PrepareOptions::Format::kAuto && (ends_with(in, ".jsonl") || ends_with(in, ".json")));
      out.push_back({in, jsonl});
    }
  }
  return out;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

std::unique_ptr<std::FILE, FileCloser> open_input(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open (", std::strerror(errno), ")");
  return std::unique_ptr<std::FILE, FileCloser>(f);
}

constexpr size_t kChunk = 1u << 20;

// A text file: one document, or one per "\n\n"-ended paragraph (non-overlapping, left to right,
// like Python's str.replace("\n\n", ...)); a trailing "\n\n" starts an empty last document.
void visit_text_file(const std::string& path, bool paragraphs, DocVisitor& v) {
  auto f = open_input(path);
  std::vector<char> buf(kChunk);
  bool prev_nl = false;
  v.begin_doc();
  for (;;) {
    size_t got = std::fread(buf.data(), 1, buf.size(), f.get());
    if (got == 0) {
      if (std::ferror(f.get())) fail(path, ": read error");
      break;
    }
    v.bytes_read(got);
    std::string_view chunk(buf.data(), got);
    if (!paragraphs) {
      v.text(chunk);
      continue;
    }
    size_t start = 0;
    for (size_t i = 0; i < got; ++i) {
      if (chunk[i] != '\n') {
        const void* nl = std::memchr(chunk.data() + i, '\n', got - i);
        if (!nl) break;
        i = size_t(static_cast<const char*>(nl) - chunk.data());
        prev_nl = false;
      }
      if (prev_nl) {  // "\n\n" ends the document here
        v.text(chunk.substr(start, i + 1 - start));
        v.end_doc();
        v.begin_doc();
        start = i + 1;
        prev_nl = false;
      } else {
        prev_nl = true;
      }
    }
    if (got > 0 && chunk[got - 1] != '\n') prev_nl = false;
    if (start < got) v.text(chunk.substr(start));
  }
  v.end_doc();
}

// JSONL: one object per line; the document is its string field.
void visit_jsonl_file(const std::string& path, const PrepareOptions& opt, DocVisitor& v) {
  auto f = open_input(path);
  std::vector<char> buf(kChunk);
  std::string line;
  size_t line_no = 0;
  auto handle = [&](const std::string& l) {
    ++line_no;
    if (l.find_first_not_of(" \t\r") == std::string::npos) return;  // blank line
    std::string why;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(l);
    } catch (const std::exception& e) {
      why = std::string("malformed JSON (") + e.what() + ")";
    }
    if (why.empty() && !j.is_object()) why = "not a JSON object";
    if (why.empty() && (!j.contains(opt.jsonl_field) || !j[opt.jsonl_field].is_string()))
      why = "no string field \"" + opt.jsonl_field + "\"";
    std::string where = path + ":" + std::to_string(line_no);
    if (!why.empty()) {
      if (!opt.skip_bad_lines) fail(where, ": ", why, " (use --skip-bad-lines to skip such lines)");
      v.skipped_line(where, why);
      return;
    }
    const std::string& text = j[opt.jsonl_field].get_ref<const std::string&>();
    v.begin_doc();
    v.text(text);
    v.end_doc();
  };
  for (;;) {
    size_t got = std::fread(buf.data(), 1, buf.size(), f.get());
    if (got == 0) {
      if (std::ferror(f.get())) fail(path, ": read error");
      break;
    }
    v.bytes_read(got);
    size_t start = 0;
    while (start < got) {
      const void* nl = std::memchr(buf.data() + start, '\n', got - start);
      if (!nl) {
        line.append(buf.data() + start, got - start);
        break;
      }
      size_t end = size_t(static_cast<const char*>(nl) - buf.data());
      line.append(buf.data() + start, end - start);
      handle(line);
      line.clear();
      start = end + 1;
    }
  }
  if (!line.empty()) handle(line);
}

void visit_all(const std::vector<Input>& inputs, const PrepareOptions& opt, DocVisitor& v) {
  for (const Input& in : inputs) {
    if (in.jsonl) visit_jsonl_file(in.path, opt, v);
    else visit_text_file(in.path, opt.paragraph_docs, v);
  }
}

// Characters = bytes that are not UTF-8 continuation bytes (equals Python's len() for valid text).
size_t count_chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// First pass for val_fraction: total characters of all document text.
struct CharCounter : DocVisitor {
  size_t chars = 0;
  void begin_doc() override {}
  void text(std::string_view p) override { chars += count_chars(p); }
  void end_doc() override {}
  void bytes_read(size_t) override {}
  void skipped_line(const std::string&, const std::string&) override {}
};

// ---------------------------------------------------------------------------------------------
// Shard output for one split (train or val)

class SplitWriter {
 public:
  SplitWriter(std::string prefix, std::string split, size_t shard_tokens)
      : prefix_(std::move(prefix)), split_(std::move(split)), shard_tokens_(shard_tokens) {}
  void write(const int* ids, size_t n) {
    while (n > 0) {
      if (!cur_) {
        cur_ = std::make_unique<TokenShardWriter>(indexed_name(done_.size()));
      }
      size_t take = std::min(n, shard_tokens_ - cur_->size());
      buf_.assign(ids, ids + take);  // ids < 65536 is checked up front
      cur_->append(buf_.data(), take);
      total_ += take;
      ids += take;
      n -= take;
      if (cur_->size() == shard_tokens_) {
        cur_->finish();
        done_.push_back(std::move(cur_));
      }
    }
  }
  size_t total() const { return total_; }
  // Finishes the last shard; returns the final names (shards are still temporaries).
  std::vector<std::string> close() {
    if (cur_) {
      cur_->finish();
      done_.push_back(std::move(cur_));
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < done_.size(); ++i)
      names.push_back(done_.size() == 1 ? prefix_ + "_" + split_ + ".bin" : indexed_name(i));
    return names;
  }
  void rename_all(const std::vector<std::string>& names) {
    for (size_t i = 0; i < done_.size(); ++i) done_[i]->rename_to(names[i]);
  }

 private:
  std::string indexed_name(size_t i) const {
    char num[32];
    std::snprintf(num, sizeof num, "%06zu", i);
    return prefix_ + "_" + split_ + "_" + num + ".bin";
  }
  std::string prefix_, split_;
  size_t shard_tokens_, total_ = 0;
  std::vector<std::unique_ptr<TokenShardWriter>> done_;
  std::unique_ptr<TokenShardWriter> cur_;
  std::vector<uint16_t> buf_;
};

// The main pass: documents -> tokens -> train/val writers.
struct Tokenizing : DocVisitor {
  const Tokenizer& tok;
  const PrepareOptions& opt;
  std::ostream* log;
  SplitWriter train, val;
  std::unique_ptr<StreamingEncoder> enc;
  std::vector<int> ids;
  bool to_val = false;          // val_fraction mode: past the split point
  size_t split_char = 0;        // val_fraction mode: first character that goes to val
  size_t chars = 0, bytes = 0, text_bytes = 0, docs = 0, skipped = 0, next_report = 16u << 20;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();

  Tokenizing(const Tokenizer& t, const PrepareOptions& o, std::ostream* l)
      : tok(t), opt(o), log(l), train(o.out_prefix, "train", o.shard_tokens), val(o.out_prefix, "val", o.shard_tokens) {}

  void flush() {  // route the tokens collected so far
    const int* p = ids.data();
    size_t n = ids.size();
    if (opt.val_tokens > 0 && val.total() < opt.val_tokens) {
      size_t take = std::min(n, opt.val_tokens - val.total());
      val.write(p, take);
      p += take;
      n -= take;
    }
    if (to_val) val.write(p, n);
    else train.write(p, n);
    ids.clear();
  }
  void begin_doc() override {
    ++docs;
    if (opt.eot) ids.push_back(tok.eot());
    enc = std::make_unique<StreamingEncoder>(tok, opt.special, opt.threads);
  }
  void text(std::string_view piece) override {
    text_bytes += piece.size();
    if (opt.val_fraction > 0 && !to_val) {
      size_t n = count_chars(piece);
      if (chars + n > split_char) {  // the split point is inside this piece: cut before that character
        size_t want = split_char - chars, cut = 0, seen = 0;
        while (cut < piece.size() && !(seen == want && (static_cast<unsigned char>(piece[cut]) & 0xC0) != 0x80)) {
          seen += (static_cast<unsigned char>(piece[cut]) & 0xC0) != 0x80;
          ++cut;
        }
        enc->feed(piece.substr(0, cut), ids);
        enc->finish(ids);
        flush();
        to_val = true;  // the rest of this document continues in val as a new document
        chars += want;
        if (opt.eot) ids.push_back(tok.eot());
        enc = std::make_unique<StreamingEncoder>(tok, opt.special, opt.threads);
        piece = piece.substr(cut);
      } else {
        chars += n;
      }
    }
    enc->feed(piece, ids);
    if (ids.size() > (1u << 16)) flush();
  }
  void end_doc() override {
    enc->finish(ids);
    enc.reset();
    flush();
  }
  void bytes_read(size_t n) override {
    bytes += n;
    if (log && opt.progress && bytes >= next_report) {
      next_report += 16u << 20;
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      *log << "prepare: " << bytes / (1 << 20) << " MiB read, " << train.total() + val.total() << " tokens, "
           << (s > 0 ? bytes / s / 1e6 : 0.0) << " MB/s" << std::endl;
    }
  }
  void skipped_line(const std::string& where, const std::string& why) override {
    if (log && skipped < 10) *log << "prepare: skipping " << where << ": " << why << std::endl;
    ++skipped;
  }
};

std::string dir_of(const std::string& prefix) {
  size_t slash = prefix.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : prefix.substr(0, slash);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

PrepareResult prepare_shards(const Tokenizer& tok, const PrepareOptions& opt, std::ostream* log) {
  if (opt.out_prefix.empty()) fail("prepare: no output prefix given");
  if (opt.out_prefix.back() == '/') fail(opt.out_prefix, ": the output prefix must name files, not a directory");
  if (!is_dir(dir_of(opt.out_prefix))) fail(dir_of(opt.out_prefix), ": output directory does not exist");
  if (opt.shard_tokens < 1 || opt.shard_tokens > size_t(INT32_MAX)) fail("prepare: shard size must be 1..2^31-1 tokens");
  if (opt.val_tokens > 0 && opt.val_fraction > 0) fail("prepare: give either a token or a fraction validation split");
  if (!(opt.val_fraction >= 0 && opt.val_fraction < 1)) fail("prepare: validation fraction must be in [0, 1)");
  if (tok.vocab_size() > 65536) fail("prepare: vocabulary too large for uint16 shards");
  std::vector<Input> inputs = expand_inputs(opt);

  Tokenizing run(tok, opt, log);
  if (opt.val_fraction > 0) {
    CharCounter cc;
    visit_all(inputs, opt, cc);
    run.split_char = size_t((1.0 - opt.val_fraction) * double(cc.chars));  // Python: int(0.9 * len(text))
  }
  visit_all(inputs, opt, run);

  PrepareResult r;
  r.documents = run.docs;
  r.input_bytes = run.bytes;
  r.skipped_lines = run.skipped;
  r.train_tokens = run.train.total();
  r.val_tokens = run.val.total();
  if (run.text_bytes == 0) fail("prepare: the input holds no text");
  if (opt.val_tokens > 0 && r.val_tokens < opt.val_tokens)
    fail("prepare: only ", r.val_tokens, " tokens in total, fewer than the ", opt.val_tokens, " requested for validation");
  if (r.train_tokens == 0) fail("prepare: no tokens left for the training split");
  if ((opt.val_tokens > 0 || opt.val_fraction > 0) && r.val_tokens == 0) fail("prepare: the validation split is empty");
  std::vector<std::string> vnames = run.val.close(), tnames = run.train.close();
  run.val.rename_all(vnames);
  run.train.rename_all(tnames);
  r.shards = vnames;
  r.shards.insert(r.shards.end(), tnames.begin(), tnames.end());
  if (log && opt.progress) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - run.t0).count();
    *log << "prepare: " << r.documents << " documents, " << r.input_bytes << " bytes -> " << r.val_tokens
         << " val + " << r.train_tokens << " train tokens in " << r.shards.size() << " shard(s), " << s << " s";
    if (r.skipped_lines) *log << ", " << r.skipped_lines << " bad lines skipped";
    *log << std::endl;
  }
  return r;
}

}  // namespace llm
