// fuzz_tokenizer_roundtrip — libFuzzer: any byte string must round-trip through encode/decode in every
// special mode, disallowed mode must fail exactly when the literal is present, and cutting at a safe
// split point must not change the tokens. Built with -fsanitize=fuzzer,address,undefined (LLM_FUZZ=ON).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "host/error.h"
#include "host/tokenizer.h"

static const llm::Tokenizer* g_tok = nullptr;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static llm::Tokenizer t = llm::Tokenizer::from_files(LLM_SOURCE_DIR "/data/gpt2/encoder.json",
                                                       LLM_SOURCE_DIR "/data/gpt2/vocab.bpe");
  g_tok = &t;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t cut_hint = data[0];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const llm::Tokenizer& tok = *g_tok;

  std::vector<int> plain = tok.encode(text, llm::SpecialMode::kAsText);
  if (tok.decode(plain) != text) std::abort();
  for (int id : plain)
    if (id < 0 || id >= 50256) std::abort();  // as text: never the special id
  std::vector<int> allowed = tok.encode(text, llm::SpecialMode::kAllowed);
  if (tok.decode(allowed) != text) std::abort();
  bool has_literal = text.find("<|endoftext|>") != std::string_view::npos;
  try {
    std::vector<int> d = tok.encode(text, llm::SpecialMode::kDisallowed);
    if (has_literal || d != plain) std::abort();
  } catch (const llm::Error&) {
    if (!has_literal) std::abort();
  }
  // safe split property at the first safe point at or after the hinted position
  for (size_t p = text.empty() ? 0 : cut_hint % text.size(); p < text.size(); ++p) {
    if (!llm::is_safe_split(text, p)) continue;
    std::vector<int> a = tok.encode(text.substr(0, p), llm::SpecialMode::kAllowed);
    std::vector<int> b = tok.encode(text.substr(p), llm::SpecialMode::kAllowed);
    a.insert(a.end(), b.begin(), b.end());
    if (a != allowed) std::abort();
    break;
  }
  return 0;
}
