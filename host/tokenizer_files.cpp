// tokenizer_files.cpp — loading the GPT-2 vocabulary (encoder.json + vocab.bpe, or llm.c's
// gpt2_tokenizer.bin), writing gpt2_tokenizer.bin, and finding the files at run time.
#include <limits.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <unordered_map>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "host/error.h"
#include "host/token_shard.h"
#include "host/tokenizer.h"
#include "host/tokenizer_impl.h"

namespace llm {

namespace {

std::atomic<uint64_t> g_uid{1};

// The GPT-2 pattern (see tokenizer.h). WS is Unicode White_Space spelled out, so the result does not
// depend on how a PCRE2 version defines \s.
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kPattern =
    "'(?:[sdmt]|ll|ve|re)"   // contractions (lower case only, as in GPT-2)
    "| ?\\p{L}++"            // optional space + letters
    "| ?\\p{N}++"            // optional space + numbers
    "| ?[^" WS "\\p{L}\\p{N}]++"  // optional space + other symbols
    "|[" WS "]++\\z"         // trailing whitespace
    "|[" WS "]+(?![^" WS "])"  // whitespace not followed by non-whitespace
    "|[" WS "]";             // a single whitespace character
#undef WS

bool file_exists_plain(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Maps GPT-2's printable stand-ins back to bytes: code point (< 324) -> byte, or -1.
struct ByteDecoder {
  int map[324];
  uint32_t enc[256];
  ByteDecoder() {
    tok::byte_to_unicode(enc);
    for (int& m : map) m = -1;
    for (int b = 0; b < 256; ++b) map[enc[b]] = b;
  }
  // Decodes a token string of stand-ins into raw bytes; false if some character is not one.
  bool decode(const std::string& s, std::string& out) const {
    out.clear();
    for (size_t i = 0; i < s.size();) {
      unsigned c = (unsigned char)s[i];
      uint32_t cp;
      if (c < 0x80) cp = c, i += 1;
      else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F), i += 2;
      else return false;  // every stand-in is below U+0800
      if (cp >= 324 || map[cp] < 0) return false;
      out += char(map[cp]);
    }
    return true;
  }
};

// The pattern compiled with UTF + UCP, anchored (every position starts a piece), JIT when available.
struct CompiledPattern {
  pcre2_code* code = nullptr;
  bool jit = false;
  CompiledPattern() {
    int err = 0;
    PCRE2_SIZE erroff = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &err, &erroff, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail("tokenizer: cannot compile the GPT-2 pattern at ", erroff, ": ", reinterpret_cast<const char*>(msg));
    }
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }
  ~CompiledPattern() { pcre2_code_free(code); }
};

std::string show(std::string_view s) {  // a short printable excerpt for error messages
  std::string r;
  for (char c : s.substr(0, 40)) r += (c >= 0x20 && c < 0x7f) ? c : '?';
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::shared_ptr<Tokenizer::Impl> Tokenizer::Impl::build(std::vector<std::string> tokens, int eot,
                                                        const std::string& name) {
  auto T = std::make_shared<Impl>();
  const size_t n = tokens.size();
  if (n < 257 || n > (1u << 24)) fail(name, ": vocabulary size ", n, " is out of range (257..2^24)");
  if (eot < 0 || size_t(eot) >= n || tokens[size_t(eot)] != "<|endoftext|>")
    fail(name, ": <|endoftext|> is missing or has a bad id");
  T->eot = eot;
  T->vocab.reserve(n);
  for (int& b : T->byte_token) b = -1;
  for (size_t id = 0; id < n; ++id) {
    if (int(id) == eot) continue;
    const std::string& t = tokens[id];
    if (t.empty()) fail(name, ": token ", id, " is empty");
    if (t.size() > 0xFFFF) fail(name, ": token ", id, " is too long");
    uint64_t h = tok::hash_bytes(t.data(), t.size());
    if (T->vocab.find(t, h)) fail(name, ": token ", id, " (\"", show(t), "\") appears twice");
    T->vocab.insert(t, h, uint32_t(id));
    if (t.size() == 1) T->byte_token[(unsigned char)t[0]] = int(id);
  }
  for (int b = 0; b < 256; ++b)
    if (T->byte_token[b] < 0) fail(name, ": no single-byte token for byte ", b);
  // Every split of every token into two tokens is a merge: (prefix, suffix) -> token.
  std::vector<uint64_t> keys;
  std::vector<int> values;
  for (size_t id = 0; id < n; ++id) {
    if (int(id) == eot) continue;
    const std::string& t = tokens[id];
    for (size_t k = 1; k < t.size(); ++k) {
      const uint32_t* a = T->vocab.find(std::string_view(t).substr(0, k), tok::hash_bytes(t.data(), k));
      if (!a) continue;
      const uint32_t* b = T->vocab.find(std::string_view(t).substr(k), tok::hash_bytes(t.data() + k, t.size() - k));
      if (!b) continue;
      keys.push_back((uint64_t(*a) << 32) | *b);
      values.push_back(int(id));
    }
  }
  T->pairs.build(keys, values);
  T->tokens = std::move(tokens);

  static const CompiledPattern pattern;  // compiled once, shared read-only by every tokenizer
  T->re = pattern.code;
  T->jit = pattern.jit;
  T->uid = g_uid.fetch_add(1);
  return T;
}

Tokenizer Tokenizer::from_strings(std::string_view encoder_json, std::string_view vocab_bpe,
                                  const std::string& name) {
  const std::string ej = name + " encoder.json", vb = name + " vocab.bpe";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(encoder_json.begin(), encoder_json.end());
  } catch (const std::exception& e) {
    fail(ej, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(ej, ": expected a JSON object of token -> id");
  const size_t n = j.size();
  if (n < 257 || n > (1u << 24)) fail(ej, ": ", n, " entries, expected 257..2^24");
  static const ByteDecoder dec;
  std::vector<std::string> tokens(n);
  std::vector<char> seen(n, 0);
  int eot = -1;
  std::string bytes;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer()) fail(ej, ": the id of \"", show(it.key()), "\" is not an integer");
    long long id = it.value().get<long long>();
    if (id < 0 || id >= (long long)n) fail(ej, ": id ", id, " of \"", show(it.key()), "\" is out of range");
    if (seen[size_t(id)]) fail(ej, ": id ", id, " is used twice");
    seen[size_t(id)] = 1;
    if (it.key() == "<|endoftext|>") {
      eot = int(id);
      tokens[size_t(id)] = it.key();
    } else if (!dec.decode(it.key(), bytes)) {
      fail(ej, ": token \"", show(it.key()), "\" has a character outside GPT-2's byte alphabet");
    } else {
      tokens[size_t(id)] = bytes;
    }
  }
  if (eot < 0) fail(ej, ": no <|endoftext|> entry");

  // vocab.bpe: "#version" line, then merges "a b" in rank order. Like tiktoken, require that the
  // ranks they imply (256 byte tokens in bytes_to_unicode order, then one per merge) equal the ids.
  size_t pos = 0, line_no = 0, merges = 0;
  uint32_t enc[256];
  tok::byte_to_unicode(enc);
  // rank of byte b = its position when printable stand-ins come first (the order tiktoken uses)
  int byte_rank[256], r = 0;
  for (int b = 0; b < 256; ++b)
    if (enc[b] == uint32_t(b)) byte_rank[b] = r++;
  for (int b = 0; b < 256; ++b)
    if (enc[b] != uint32_t(b)) byte_rank[b] = r++;
  std::vector<int> id_of_byte(256, -1);
  for (size_t id = 0; id < n; ++id)
    if (int(id) != eot && tokens[id].size() == 1) id_of_byte[(unsigned char)tokens[id][0]] = int(id);
  for (int b = 0; b < 256; ++b)
    if (id_of_byte[b] != byte_rank[b])
      fail(ej, ": byte ", b, " has id ", id_of_byte[b], ", expected ", byte_rank[b], " (GPT-2 byte order)");
  std::unordered_map<std::string, int> id_of;  // only used to check the merge list
  id_of.reserve(n);
  for (size_t id = 0; id < n; ++id)
    if (int(id) != eot) id_of.emplace(tokens[id], int(id));
  std::string a, b;
  while (pos < vocab_bpe.size()) {
    size_t nl = vocab_bpe.find('\n', pos);
    std::string_view line = vocab_bpe.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? vocab_bpe.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1) {
      if (line.substr(0, 8) != "#version") fail(vb, ": line 1 should be the \"#version\" header");
      continue;
    }
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      fail(vb, ":", line_no, ": expected two symbols separated by one space");
    if (!dec.decode(std::string(line.substr(0, sp)), a) || !dec.decode(std::string(line.substr(sp + 1)), b))
      fail(vb, ":", line_no, ": symbol outside GPT-2's byte alphabet");
    auto it = id_of.find(a + b);
    int want = 256 + int(merges);
    if (it == id_of.end() || it->second != want)
      fail(vb, ":", line_no, ": merge result is ", it == id_of.end() ? "not in encoder.json" : "out of rank order",
           " (expected id ", want, ")");
    ++merges;
  }
  if (line_no == 0) fail(vb, ": empty file");
  if (256 + merges + 1 != n)
    fail(vb, ": ", merges, " merges but encoder.json has ", n, " entries (expected ", n - 257, " merges)");
  Tokenizer t;
  t.impl_ = Impl::build(std::move(tokens), eot, ej);
  return t;
}

Tokenizer Tokenizer::from_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  std::string ej = read_file_bytes(encoder_json), vb = read_file_bytes(vocab_bpe);
  try {
    return from_strings(ej, vb, "");
  } catch (const Error& e) {
    // name the actual files instead of the placeholder prefix
    std::string m = e.what();
    if (m.rfind(" encoder.json", 0) == 0) m = encoder_json + m.substr(13);
    else if (m.rfind(" vocab.bpe", 0) == 0) m = vocab_bpe + m.substr(10);
    throw Error(m);
  }
}

// llm.c gpt2_tokenizer.bin: 256 x uint32 header (magic, version, vocab size, eot id for v2), then
// per token one length byte (1..255) and that many raw bytes.
Tokenizer Tokenizer::from_bin_bytes(std::string_view data, const std::string& name) {
  if (data.size() < 1024) fail(name, ": too small for the 1024-byte header (", data.size(), " bytes)");
  uint32_t h[4];
  std::memcpy(h, data.data(), sizeof h);
  if (h[0] != kBinMagic) fail(name, ": bad magic ", h[0], " (expected ", kBinMagic, ")");
  if (h[1] != 1 && h[1] != 2) fail(name, ": unsupported version ", h[1], " (expected 1 or 2)");
  const uint32_t n = h[2];
  if (n < 257 || n > (1u << 24)) fail(name, ": vocabulary size ", n, " is out of range");
  const uint32_t eot = h[1] == 1 ? 50256u : h[3];
  if (h[1] == 1 && n != 50257) fail(name, ": version 1 requires 50257 tokens, header says ", n);
  if (eot >= n) fail(name, ": eot id ", eot, " >= vocabulary size ", n);
  // every token takes at least 2 bytes; check before allocating n strings
  if ((data.size() - 1024) / 2 < n) fail(name, ": truncated: ", data.size(), " bytes cannot hold ", n, " tokens");
  std::vector<std::string> tokens(n);
  size_t pos = 1024;
  for (uint32_t i = 0; i < n; ++i) {
    if (pos >= data.size()) fail(name, ": truncated at token ", i, " of ", n);
    size_t len = (unsigned char)data[pos++];
    if (len == 0) fail(name, ": token ", i, " has length 0");
    if (pos + len > data.size()) fail(name, ": truncated inside token ", i);
    tokens[i].assign(data.data() + pos, len);
    pos += len;
  }
  if (pos != data.size()) fail(name, ": ", data.size() - pos, " unexpected bytes after the last token");
  Tokenizer t;
  t.impl_ = Impl::build(std::move(tokens), int(eot), name);
  return t;
}

Tokenizer Tokenizer::from_bin(const std::string& path) { return from_bin_bytes(read_file_bytes(path), path); }

void Tokenizer::write_bin(const std::string& path) const {
  const Impl& T = *impl_;
  std::string out(1024, '\0');
  uint32_t h[4] = {kBinMagic, 2, uint32_t(T.tokens.size()), uint32_t(T.eot)};
  std::memcpy(&out[0], h, sizeof h);
  for (size_t i = 0; i < T.tokens.size(); ++i) {
    if (T.tokens[i].size() > 255) fail(path, ": token ", i, " is longer than 255 bytes");
    out += char(T.tokens[i].size());
    out += T.tokens[i];
  }
  write_file_atomic(path, out);
}

// ---------------------------------------------------------------------------------------------
// Finding the files

static std::vector<std::string> search_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("LLM_TOKENIZER_DIR"); env && *env) dirs.emplace_back(env);
  char buf[PATH_MAX];
  ssize_t len = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (len > 0) {
    std::string exe(buf, size_t(len));
    std::string dir = exe.substr(0, exe.rfind('/'));
    dirs.push_back(dir + "/../data/gpt2");
    dirs.push_back(dir + "/data/gpt2");
  }
  dirs.emplace_back("data/gpt2");
  return dirs;
}

void Tokenizer::check_env_dir() {
  const char* env = std::getenv("LLM_TOKENIZER_DIR");
  if (!env || !*env) return;
  const std::string d = env;
  if (!(file_exists_plain(d + "/encoder.json") && file_exists_plain(d + "/vocab.bpe")) &&
      !file_exists_plain(d + "/gpt2_tokenizer.bin"))
    fail("LLM_TOKENIZER_DIR=", d, ": holds neither encoder.json + vocab.bpe nor gpt2_tokenizer.bin (unset it to use "
         "the bundled vocabulary)");
}

std::string Tokenizer::default_dir() {
  check_env_dir();  // set but unusable is an error, never a silent fallback to the bundled files
  for (const std::string& d : search_dirs())
    if ((file_exists_plain(d + "/encoder.json") && file_exists_plain(d + "/vocab.bpe")) ||
        file_exists_plain(d + "/gpt2_tokenizer.bin"))
      return d;
  std::string tried;
  for (const std::string& d : search_dirs()) tried += " " + d;
  fail("cannot find the GPT-2 vocabulary (encoder.json + vocab.bpe, or gpt2_tokenizer.bin); looked in:", tried,
       " (set LLM_TOKENIZER_DIR)");
}

Tokenizer Tokenizer::from_default() {
  std::string d = default_dir();
  if (file_exists_plain(d + "/encoder.json") && file_exists_plain(d + "/vocab.bpe"))
    return from_files(d + "/encoder.json", d + "/vocab.bpe");
  return from_bin(d + "/gpt2_tokenizer.bin");
}

}  // namespace llm
