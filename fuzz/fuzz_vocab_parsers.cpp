// fuzz_vocab_parsers — libFuzzer for the vocabulary readers: encoder.json + vocab.bpe and llm.c's
// gpt2_tokenizer.bin. Byte 0 picks the file that the rest of the input replaces; the other file is a
// small valid vocabulary (256 byte tokens + the first 24 GPT-2 merges + <|endoftext|>) so that
// mutations of the seeds reach the deep checks. Any input may be rejected with llm::Error; nothing
// else (crash, leak, UB, other exception) is allowed, and an accepted vocabulary must round-trip text.
// FUZZ_WRITE_SEEDS=<dir> writes the valid seed files there and exits (scripts/run_fuzz.sh uses it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "host/error.h"
#include "host/token_shard.h"
#include "host/tokenizer.h"

static std::string g_json, g_bpe, g_bin;

// A small vocabulary derived from the real files: the byte tokens and the first k merges.
static void make_small_vocab(int k) {
  std::string bpe = llm::read_file_bytes(LLM_SOURCE_DIR "/data/gpt2/vocab.bpe");
  size_t pos = 0;
  for (int line = 0; line < k + 1; ++line) pos = bpe.find('\n', pos) + 1;
  g_bpe = bpe.substr(0, pos);
  // encoder.json entries with id < 256 + k, plus <|endoftext|> = 256 + k
  llm::Tokenizer full = llm::Tokenizer::from_files(LLM_SOURCE_DIR "/data/gpt2/encoder.json",
                                                   LLM_SOURCE_DIR "/data/gpt2/vocab.bpe");
  std::string enc = llm::read_file_bytes(LLM_SOURCE_DIR "/data/gpt2/encoder.json");
  std::string json = "{";
  // entries look like "key": id, — pick those with small ids by scanning the text
  size_t i = 1;
  bool first = true;
  while (i < enc.size()) {
    size_t q1 = enc.find('"', i);
    if (q1 == std::string::npos) break;
    size_t q2 = q1 + 1;
    while (q2 < enc.size() && enc[q2] != '"') q2 += enc[q2] == '\\' ? 2 : 1;
    size_t colon = enc.find(':', q2);
    size_t end = enc.find_first_of(",}", colon);
    int id = std::atoi(enc.substr(colon + 1, end - colon - 1).c_str());
    if (id < 256 + k) {
      json += (first ? "" : ", ") + enc.substr(q1, q2 + 1 - q1) + ": " + std::to_string(id);
      first = false;
    }
    i = end + 1;
  }
  json += ", \"<|endoftext|>\": " + std::to_string(256 + k) + "}";
  g_json = json;
  llm::Tokenizer small = llm::Tokenizer::from_strings(g_json, g_bpe, "seed");
  std::string tmp = "/tmp/fuzz_vocab_seed.bin";
  small.write_bin(tmp);
  g_bin = llm::read_file_bytes(tmp);
  std::remove(tmp.c_str());
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  make_small_vocab(24);
  if (const char* dir = std::getenv("FUZZ_WRITE_SEEDS")) {
    std::ofstream(std::string(dir) + "/seed_json", std::ios::binary) << '\0' << g_json;
    std::ofstream(std::string(dir) + "/seed_bpe", std::ios::binary) << '\1' << g_bpe;
    std::ofstream(std::string(dir) + "/seed_bin", std::ios::binary) << '\2' << g_bin;
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    llm::Tokenizer t = data[0] % 3 == 0   ? llm::Tokenizer::from_strings(body, g_bpe, "f")
                       : data[0] % 3 == 1 ? llm::Tokenizer::from_strings(g_json, body, "f")
                                          : llm::Tokenizer::from_bin_bytes(body, "f");
    const std::string s = "Hello, world! \xff 12 <|endoftext|>";
    if (t.decode(t.encode(s, llm::SpecialMode::kAllowed)) != s) std::abort();
  } catch (const llm::Error&) {
  }
  return 0;
}
