// tokenizer.h — GPT-2 byte-level BPE (encode + decode), token-for-token identical to tiktoken "gpt2".
//
// Why in C++: llm.c can only decode; with this the whole data path (text -> shards) needs no Python.
//
// Algorithm (what tiktoken does):
//   1. Pre-tokenise with the GPT-2 pattern (PCRE2, UTF + UCP, JIT):
//        's 't 're 've 'm 'll 'd | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
//      (\s here is Unicode White_Space, as in Rust's regex; PCRE2 10.42 leaves U+0085 out of \s, so
//      the compiled pattern spells it in explicitly.)
//   2. Each piece's UTF-8 bytes start as single-byte tokens; repeatedly merge the adjacent pair whose
//      concatenation is a vocabulary token with the lowest rank (leftmost on ties). Rank == token id
//      (checked against vocab.bpe when loading from encoder.json + vocab.bpe).
//   3. Whole-piece lookups first, then a per-thread cache of multi-token pieces.
//
// Invalid UTF-8 (tiktoken only accepts valid str, so this is our rule): the input is split into
// maximal runs of valid UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) and single bytes
// that do not start a complete valid sequence. Each valid run is encoded exactly as tiktoken encodes
// that run as a string of its own; each invalid byte becomes its single-byte token (e.g. 0xFF -> 187).
// So decode(encode(b)) == b for every byte string b, and valid UTF-8 input is unaffected.
//
// <|endoftext|> (id 50256), SpecialMode:
//   kDisallowed (default): the literal text "<|endoftext|>" in the input is an error (llm::Error naming
//                          its byte offset), like tiktoken's default.
//   kAllowed:              the literal becomes 50256; the text on each side is encoded separately.
//   kAsText:               the literal is encoded as ordinary text (27, 91, 437, 1659, 5239, 91, 29).
//
// Vocabulary files: programs look in, in order,
//   $LLM_TOKENIZER_DIR, <directory of the executable>/../data/gpt2, <directory of the executable>/data/gpt2,
//   ./data/gpt2
// for encoder.json + vocab.bpe (or, failing those, gpt2_tokenizer.bin).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llm {

enum class SpecialMode { kDisallowed, kAllowed, kAsText };

class Tokenizer {
 public:
  static constexpr int kEot = 50256;
  static constexpr uint32_t kBinMagic = 20240328;  // llm.c gpt2_tokenizer.bin

  // Loaders; every problem throws llm::Error naming the file.
  static Tokenizer from_files(const std::string& encoder_json, const std::string& vocab_bpe);
  // Same from in-memory contents; `name` prefixes error messages (used by the fuzzer).
  static Tokenizer from_strings(std::string_view encoder_json, std::string_view vocab_bpe,
                                const std::string& name = "<memory>");
  // llm.c gpt2_tokenizer.bin (v1 or v2). Encoding from it assumes rank == id, true for GPT-2.
  static Tokenizer from_bin(const std::string& path);
  static Tokenizer from_bin_bytes(std::string_view bytes, const std::string& name = "<memory>");
  // The search order documented above.
  static Tokenizer from_default();
  static std::string default_dir();  // the first directory in the search order holding the files
  // Fails when $LLM_TOKENIZER_DIR is set but holds no vocabulary (no-op when it is unset).
  static void check_env_dir();

  // llm.c gpt2_tokenizer.bin, version 2 (magic, version, vocab size, eot), written atomically.
  void write_bin(const std::string& path) const;

  std::vector<int> encode(std::string_view text, SpecialMode mode = SpecialMode::kDisallowed) const;
  // Appends to out; offset_base is added to byte offsets in error messages.
  void encode_append(std::string_view text, SpecialMode mode, std::vector<int>& out,
                     size_t offset_base = 0) const;
  // Same result as encode(), computed by `threads` threads on chunks cut at safe_split points.
  std::vector<int> encode_parallel(std::string_view text, SpecialMode mode, int threads) const;

  std::string decode(const std::vector<int>& ids) const;
  std::string decode(const int* ids, size_t n) const;
  std::string decode_token(int id) const;         // raw bytes of one token (may be partial UTF-8)
  std::string_view token_bytes(int id) const;     // same without a copy; throws on a bad id

  int eot() const { return kEot; }
  int vocab_size() const;

  struct Impl;  // internal (host/tokenizer_impl.h)

 private:
  std::shared_ptr<const Impl> impl_;
};

// True when cutting `text` before byte p cannot change the tokens: encode(text[:p]) + encode(text[p:])
// == encode(text) in every special mode. Used for parallel and streaming encoding. Either
// (a) text[p-1] == '\n' and neither the character before it nor the one at p is Unicode White_Space
//     (an invalid byte counts as non-space); or
// (b) text[p-1] and text[p] are ASCII, neither a space, an apostrophe nor '|', and of different
//     classes among {letter, digit, other}.
// No piece of the pattern spans such a point, and no cut can fall inside "<|endoftext|>".
bool is_safe_split(std::string_view text, size_t p);
// The last safe split point p with lo < p <= hi (hi <= text.size()), or 0 when there is none.
size_t find_safe_split(std::string_view text, size_t lo, size_t hi);

}  // namespace llm
