// tokenizer — GPT-2 BPE on the command line (the interface is fixed; other tools rely on it).
//
//   tokenizer encode [--allow-special | --special-as-text] < in.txt   ids, single spaces, one final newline
//   tokenizer decode < ids.txt                                         raw bytes
//   tokenizer count [--allow-special | --special-as-text] [--threads N] FILE...   "<count> <file>" per file
//   tokenizer prepare [options] INPUT... -o PREFIX                     llm.c token shards (see --help)
// count and prepare encode with 2 threads by default (1 on a single-core machine); the ids do not
// depend on the thread count.
//   tokenizer export-bin PATH                                          llm.c gpt2_tokenizer.bin (v2)
//
// The vocabulary comes from --vocab-dir, else $LLM_TOKENIZER_DIR, <exe dir>/../data/gpt2,
// <exe dir>/data/gpt2, ./data/gpt2. Bad input (disallowed <|endoftext|>, bad id, unreadable file,
// bad option) prints "error: ..." and exits 2.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "host/data_prep.h"
#include "host/error.h"
#include "host/token_shard.h"
#include "host/tokenizer.h"

namespace {

using llm::SpecialMode;

llm::Tokenizer load(const std::string& vocab_dir) {
  if (vocab_dir.empty()) return llm::Tokenizer::from_default();
  return llm::Tokenizer::from_files(vocab_dir + "/encoder.json", vocab_dir + "/vocab.bpe");
}

// Buffered decimal output of ids separated by single spaces.
struct IdWriter {
  std::string buf;
  bool first = true;
  void put(const std::vector<int>& ids) {
    char num[16];
    for (int id : ids) {
      if (!first) buf += ' ';
      first = false;
      auto r = std::to_chars(num, num + sizeof num, id);
      buf.append(num, r.ptr);
    }
    if (buf.size() > (1u << 20)) flush();
  }
  void flush() {
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), stdout) != buf.size()) llm::fail("stdout: write failed");
    buf.clear();
  }
};

int cmd_encode(const llm::Tokenizer& tok, SpecialMode mode) {
  llm::StreamingEncoder enc(tok, mode);
  std::vector<char> chunk(1u << 20);
  std::vector<int> ids;
  IdWriter out;
  for (;;) {
    size_t got = std::fread(chunk.data(), 1, chunk.size(), stdin);
    if (got == 0) {
      if (std::ferror(stdin)) llm::fail("stdin: read error");
      break;
    }
    enc.feed(std::string_view(chunk.data(), got), ids);
    out.put(ids);
    ids.clear();
  }
  enc.finish(ids);
  out.put(ids);
  out.buf += '\n';
  out.flush();
  return 0;
}

int cmd_decode(const llm::Tokenizer& tok) {
  std::string in;
  std::vector<char> chunk(1u << 20);
  while (size_t got = std::fread(chunk.data(), 1, chunk.size(), stdin)) in.append(chunk.data(), got);
  if (std::ferror(stdin)) llm::fail("stdin: read error");
  // parse everything first so that a bad id produces no output at all
  std::vector<int> ids;
  size_t i = 0, n = in.size(), index = 0;
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ','; };
  while (i < n) {
    while (i < n && is_space(in[i])) ++i;
    if (i >= n) break;
    size_t j = i;
    while (j < n && !is_space(in[j])) ++j;
    long long v = -1;
    auto r = std::from_chars(in.data() + i, in.data() + j, v);
    if (r.ec != std::errc() || r.ptr != in.data() + j)
      llm::fail("stdin: token ", index, " is not a decimal id: \"", in.substr(i, std::min<size_t>(j - i, 20)), "\"");
    if (v < 0 || v >= tok.vocab_size())
      llm::fail("stdin: token ", index, " has id ", v, ", outside 0..", tok.vocab_size() - 1);
    ids.push_back(int(v));
    ++index;
    i = j;
  }
  std::string bytes = tok.decode(ids);
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) llm::fail("stdout: write failed");
  return 0;
}

int cmd_count(const llm::Tokenizer& tok, SpecialMode mode, int threads, const std::vector<std::string>& files) {
  std::vector<size_t> counts;  // all files first, so an error prints nothing
  for (const std::string& f : files) {
    llm::StreamingEncoder enc(tok, mode, threads);
    std::FILE* fp = std::fopen(f.c_str(), "rb");
    if (!fp) llm::fail(f, ": cannot open");
    std::vector<char> chunk(1u << 20);
    std::vector<int> ids;
    size_t count = 0;
    try {
      while (size_t got = std::fread(chunk.data(), 1, chunk.size(), fp)) {
        enc.feed(std::string_view(chunk.data(), got), ids);
        count += ids.size();
        ids.clear();
      }
      bool err = std::ferror(fp);
      std::fclose(fp);
      fp = nullptr;
      if (err) llm::fail(f, ": read error (is it a directory?)");
      enc.finish(ids);
    } catch (const llm::Error& e) {
      if (fp) std::fclose(fp);
      std::string m = e.what();
      if (m.rfind(f + ":", 0) == 0) throw;
      llm::fail(f, ": ", m);
    }
    counts.push_back(count + ids.size());
  }
  for (size_t i = 0; i < files.size(); ++i) std::printf("%zu %s\n", counts[i], files[i].c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPT-2 BPE tokenizer (identical to tiktoken \"gpt2\") and llm.c data preparation"};
  app.require_subcommand(1);
  std::string vocab_dir;
  app.add_option("--vocab-dir", vocab_dir, "directory with encoder.json + vocab.bpe (default: search, see README)");

  bool allow = false, as_text = false;
  auto add_special_flags = [&](CLI::App* c) {
    auto* a = c->add_flag("--allow-special", allow, "<|endoftext|> in the input becomes id 50256");
    auto* t = c->add_flag("--special-as-text", as_text, "<|endoftext|> is encoded as ordinary text");
    a->excludes(t);
  };
  CLI::App* enc = app.add_subcommand("encode", "stdin text -> ids (default: <|endoftext|> in the input is an error)");
  add_special_flags(enc);
  CLI::App* dec = app.add_subcommand("decode", "stdin ids -> raw bytes");
  // encoding threads for count / prepare: 2 where there are 2 cores (the ids do not depend on it)
  const int default_threads = std::thread::hardware_concurrency() >= 2 ? 2 : 1;
  CLI::App* cnt = app.add_subcommand("count", "token count of each file");
  std::vector<std::string> count_files;
  int count_threads = default_threads;
  cnt->add_option("files", count_files, "files")->required();
  cnt->add_option("--threads", count_threads, "encoding threads (default 2, 1 on a single-core machine)")
      ->check(CLI::Range(1, 64));
  add_special_flags(cnt);

  CLI::App* prep = app.add_subcommand("prepare", "text / directories of .txt / JSONL -> llm.c token shards");
  llm::PrepareOptions po;
  std::string format = "auto";
  bool no_eot = false, quiet = false, prep_allow = false;
  prep->add_option("inputs", po.inputs, "text files, directories (*.txt), or .jsonl files")->required();
  prep->add_option("-o,--out-prefix", po.out_prefix, "output prefix: <prefix>_{train,val}[_NNNNNN].bin")->required();
  prep->add_option("--format", format, "auto (by extension), text or jsonl")->check(CLI::IsMember({"auto", "text", "jsonl"}));
  prep->add_option("--field", po.jsonl_field, "JSONL field holding the document text (default text)");
  prep->add_option("--shard-tokens", po.shard_tokens, "tokens per shard (default 100000000)");
  auto* vt = prep->add_option("--val-tokens", po.val_tokens, "the first N tokens go to the validation split");
  auto* vf = prep->add_option("--val-fraction", po.val_fraction, "the last fraction of the characters go to validation");
  vt->excludes(vf);
  prep->add_flag("--paragraph-docs", po.paragraph_docs, "each \"\\n\\n\"-ended paragraph is a document (llm.c tinyshakespeare)");
  prep->add_flag("--no-eot", no_eot, "do not put 50256 before each document");
  prep->add_flag("--allow-special", prep_allow, "<|endoftext|> in the text becomes 50256 (default: plain text)");
  prep->add_flag("--skip-bad-lines", po.skip_bad_lines, "skip malformed JSONL lines instead of failing");
  po.threads = default_threads;
  prep->add_option("--threads", po.threads, "encoding threads (default 2, 1 on a single-core machine)")
      ->check(CLI::Range(1, 64));
  prep->add_flag("-q,--quiet", quiet, "no progress output");

  CLI::App* exp = app.add_subcommand("export-bin", "write llm.c's gpt2_tokenizer.bin (version 2)");
  std::string bin_path;
  exp->add_option("path", bin_path, "output file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return llm::kExitBadInput;
  }
  SpecialMode mode = allow ? SpecialMode::kAllowed : as_text ? SpecialMode::kAsText : SpecialMode::kDisallowed;
  try {
    llm::Tokenizer tok = load(vocab_dir);
    if (*enc) return cmd_encode(tok, mode);
    if (*dec) return cmd_decode(tok);
    if (*cnt) return cmd_count(tok, mode, count_threads, count_files);
    if (*exp) {
      tok.write_bin(bin_path);
      return 0;
    }
    if (*prep) {
      po.format = format == "text" ? llm::PrepareOptions::Format::kText
                  : format == "jsonl" ? llm::PrepareOptions::Format::kJsonl
                                      : llm::PrepareOptions::Format::kAuto;
      po.eot = !no_eot;
      po.progress = !quiet;
      po.special = prep_allow ? SpecialMode::kAllowed : SpecialMode::kAsText;
      llm::PrepareResult r = llm::prepare_shards(tok, po, &std::cerr);
      for (const std::string& s : r.shards) std::printf("%s\n", s.c_str());
      return 0;
    }
  } catch (const llm::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return llm::kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
