// data_prep.h — text -> llm.c token shards (`tokenizer prepare`), streaming with bounded memory.
//
// Inputs: text files (one document each, or one per "\n\n"-ended paragraph with paragraph_docs, which
// is llm.c's tinyshakespeare convention), directories (their *.txt files, recursively, sorted), and
// JSONL files (*.jsonl / *.json, or format kJsonl): one JSON object per line, the document is its
// string field `jsonl_field` ("text"); blank lines are ignored; a malformed line is an error naming
// file:line, or is skipped and counted with skip_bad_lines. Bytes that are not UTF-8 are encoded as
// byte tokens (see tokenizer.h).
//
// Output: a 50256 before each document (unless eot == false), then the document's tokens.
//   Validation split, at most one of:
//     val_tokens N    the first N tokens of the stream go to val (llm.c: tinyshakespeare uses 32,768);
//     val_fraction F  the last F of the characters go to val (the book: train = text[:int(0.9*len)]);
//                     the document cut by the split point continues in val as a new document, tokenized
//                     separately as the book does. Needs a first pass that only counts characters.
//   Each split is written as shards of at most shard_tokens tokens named <prefix>_<split>.bin when it
//   fits in one shard, else <prefix>_<split>_000000.bin, _000001.bin, ... All shards are written to
//   temporary files and renamed only after the whole run succeeded, so an error leaves no output.
// Memory: one read chunk (1 MiB) plus the text since the last safe split point (tokenizer.h: a newline
// between two non-space characters, or an ASCII letter/digit/punctuation boundary), plus one JSONL
// line; independent of shard and input sizes. (Text with no such point at all, e.g. megabytes of one
// whitespace run, is held whole.)
#pragma once
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "host/tokenizer.h"

namespace llm {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files and directories
  std::string out_prefix;           // its directory must exist
  enum class Format { kAuto, kText, kJsonl } format = Format::kAuto;
  std::string jsonl_field = "text";
  size_t shard_tokens = 100000000;  // llm.c's FineWeb shard size
  size_t val_tokens = 0;
  double val_fraction = 0.0;
  bool paragraph_docs = false;
  bool eot = true;
  bool skip_bad_lines = false;
  SpecialMode special = SpecialMode::kAsText;  // how a literal "<|endoftext|>" in the text is treated
  int threads = 1;
  bool progress = true;  // progress lines on the log stream
};

struct PrepareResult {
  size_t documents = 0, input_bytes = 0, train_tokens = 0, val_tokens = 0, skipped_lines = 0;
  std::vector<std::string> shards;  // final paths, val first
};

// Throws llm::Error on bad input (nothing is left behind then). log may be null.
PrepareResult prepare_shards(const Tokenizer& tok, const PrepareOptions& opt, std::ostream* log);

// Encodes a text delivered in pieces: each feed() encodes up to the last safe split point and keeps
// the rest; finish() encodes the remainder. Output equals tok.encode(whole text, mode).
class StreamingEncoder {
 public:
  StreamingEncoder(const Tokenizer& tok, SpecialMode mode, int threads = 1);
  void feed(std::string_view chunk, std::vector<int>& out);
  void finish(std::vector<int>& out);
  size_t pending_bytes() const { return pending_.size(); }

 private:
  void encode_prefix(size_t n, std::vector<int>& out);
  const Tokenizer& tok_;
  SpecialMode mode_;
  int threads_;
  std::string pending_;
  size_t base_ = 0;     // byte offset of pending_[0] in the whole text (for error messages)
  size_t scanned_ = 0;  // pending_ bytes already searched for a safe split point
};

}  // namespace llm
