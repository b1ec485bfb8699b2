// test_tokenizer_prepare.cpp — `tokenizer prepare` end to end (llm.c's tinyshakespeare shards and the
// book's the-verdict split, hashes from tiktoken), sharding, JSONL errors, no partial output, the CLI.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/wait.h>

#include <fstream>

#include "host/data_prep.h"
#include "host/error.h"
#include "tests/test_tokenizer_common.h"

using llm::PrepareOptions;

namespace {

std::vector<std::string> list_dir(const std::string& d) {
  std::vector<std::string> out;
  if (DIR* dir = opendir(d.c_str())) {
    while (dirent* e = readdir(dir))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    closedir(dir);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), long(bytes.size()));
}

void remove_tree(const std::string& d) {
  for (const std::string& n : list_dir(d)) {
    std::string p = d + "/" + n;
    if (!list_dir(p).empty() || opendir(p.c_str())) remove_tree(p);
    else std::remove(p.c_str());
  }
  rmdir(d.c_str());
}

std::vector<int> as_int(const std::vector<uint16_t>& v) { return std::vector<int>(v.begin(), v.end()); }

// Runs the CLI with a shell command line; returns the exit status and stdout.
int run_cli(const std::string& args, std::string* out = nullptr) {
  std::string cmd = std::string(LLM_BINARY_DIR) + "/tokenizer --vocab-dir " + tokt::src("data/gpt2") + " " + args;
  FILE* p = popen(cmd.c_str(), "r");
  std::string s;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) s.append(buf, n);
  int st = pclose(p);
  if (out) *out = s;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

TEST(Prepare, TinyShakespeareLikeLlmc) {
  std::string dir = tokt::temp_dir("prep_ts");
  PrepareOptions o;
  o.inputs = {tokt::src("data/tinyshakespeare.txt")};
  o.out_prefix = dir + "/tiny_shakespeare";
  o.paragraph_docs = true;
  o.val_tokens = 32768;
  o.progress = false;
  llm::PrepareResult r = llm::prepare_shards(tokt::gpt2(), o, nullptr);
  const auto& want = tokt::fixture()["splits"]["llmc_tinyshakespeare"];
  EXPECT_EQ(r.shards, (std::vector<std::string>{dir + "/tiny_shakespeare_val.bin", dir + "/tiny_shakespeare_train.bin"}));
  auto val = llm::read_token_shard(dir + "/tiny_shakespeare_val.bin");
  auto train = llm::read_token_shard(dir + "/tiny_shakespeare_train.bin");
  EXPECT_EQ(val.size(), want["val_count"].get<size_t>());
  EXPECT_EQ(train.size(), want["train_count"].get<size_t>());  // 305,260 as in llm.c
  EXPECT_EQ(tokt::fnv64(val), want["val_fnv64"].get<std::string>());
  EXPECT_EQ(tokt::fnv64(train), want["train_fnv64"].get<std::string>());
  EXPECT_EQ(list_dir(dir).size(), 2u);
  remove_tree(dir);
}

TEST(Prepare, TheVerdictLikeTheBook) {
  std::string dir = tokt::temp_dir("prep_v");
  PrepareOptions o;
  o.inputs = {tokt::src("data/the-verdict.txt")};
  o.out_prefix = dir + "/v";
  o.val_fraction = 0.1;
  o.eot = false;
  o.progress = false;
  llm::prepare_shards(tokt::gpt2(), o, nullptr);
  const auto& want = tokt::fixture()["splits"]["book_the_verdict"];
  auto train = llm::read_token_shard(dir + "/v_train.bin"), val = llm::read_token_shard(dir + "/v_val.bin");
  EXPECT_EQ(train.size(), 4612u);
  EXPECT_EQ(val.size(), 534u);
  EXPECT_EQ(tokt::fnv64(train), want["train_fnv64"].get<std::string>());
  EXPECT_EQ(tokt::fnv64(val), want["val_fnv64"].get<std::string>());
  remove_tree(dir);
}

TEST(Prepare, DirectoryOfTextFilesIntoSeveralShards) {
  std::string dir = tokt::temp_dir("prep_dir");
  mkdir((dir + "/in").c_str(), 0755);
  mkdir((dir + "/in/sub").c_str(), 0755);
  mkdir((dir + "/out").c_str(), 0755);
  std::vector<std::string> docs = {"Hello world.\n", "Second doc: caf\xc3\xa9 \xff bytes", "Third, in a subdirectory!"};
  write_file(dir + "/in/a.txt", docs[0]);
  write_file(dir + "/in/b.txt", docs[1]);
  write_file(dir + "/in/sub/c.txt", docs[2]);
  write_file(dir + "/in/ignored.md", "not a .txt file");
  PrepareOptions o;
  o.inputs = {dir + "/in"};
  o.out_prefix = dir + "/out/x";
  o.shard_tokens = 7;
  o.val_tokens = 5;
  o.progress = false;
  llm::PrepareResult r = llm::prepare_shards(tokt::gpt2(), o, nullptr);
  std::vector<int> want;
  for (const auto& d : docs) {  // sorted order: a.txt, b.txt, sub/c.txt
    want.push_back(50256);
    auto ids = tokt::gpt2().encode(d, llm::SpecialMode::kAsText);
    want.insert(want.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(r.documents, 3u);
  EXPECT_EQ(r.val_tokens, 5u);
  EXPECT_EQ(r.train_tokens, want.size() - 5);
  std::vector<int> got = as_int(llm::read_token_shard(dir + "/out/x_val.bin"));
  std::vector<std::string> names = list_dir(dir + "/out");
  ASSERT_EQ(names.size(), 1 + (want.size() - 5 + 6) / 7);
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "x_train_%06zu.bin", i);
    EXPECT_EQ(names[i], name);
    auto part = as_int(llm::read_token_shard(dir + "/out/" + name));
    EXPECT_LE(part.size(), 7u);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(tokt::gpt2().decode(got), "<|endoftext|>" + docs[0] + "<|endoftext|>" + docs[1] + "<|endoftext|>" + docs[2]);
  remove_tree(dir);
}

TEST(Prepare, JsonlWithBadLines) {
  std::string dir = tokt::temp_dir("prep_jsonl");
  std::string in = dir + "/docs.jsonl";
  write_file(in, "{\"text\": \"first doc\"}\n\n{\"text\": \"second <|endoftext|> doc\", \"id\": 2}\n{\"text\": oops}\n"
                 "{\"body\": \"no text field\"}\n{\"text\": \"last\"}");
  PrepareOptions o;
  o.inputs = {in};
  o.out_prefix = dir + "/j";
  o.progress = false;
  try {
    llm::prepare_shards(tokt::gpt2(), o, nullptr);
    ADD_FAILURE() << "malformed line accepted";
  } catch (const llm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(in + ":4: malformed JSON"), std::string::npos) << e.what();
  }
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"docs.jsonl"});  // nothing left behind
  o.skip_bad_lines = true;
  llm::PrepareResult r = llm::prepare_shards(tokt::gpt2(), o, nullptr);
  EXPECT_EQ(r.skipped_lines, 2u);
  EXPECT_EQ(r.documents, 3u);
  auto got = as_int(llm::read_token_shard(dir + "/j_train.bin"));
  EXPECT_EQ(tokt::gpt2().decode(got), "<|endoftext|>first doc<|endoftext|>second <|endoftext|> doc<|endoftext|>last");
  EXPECT_EQ(std::count(got.begin(), got.end(), 50256), 3);  // the literal inside a document is plain text
  remove_tree(dir);
}

TEST(Prepare, BadInputsFailCleanly) {
  std::string dir = tokt::temp_dir("prep_bad");
  write_file(dir + "/empty.txt", "");
  write_file(dir + "/ok.txt", "some text");
  auto expect_error = [&](PrepareOptions o, const std::string& what) {
    o.progress = false;
    try {
      llm::prepare_shards(tokt::gpt2(), o, nullptr);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const llm::Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  PrepareOptions o;
  o.out_prefix = dir + "/o";
  o.inputs = {dir + "/empty.txt"};
  expect_error(o, "no text");
  o.inputs = {dir + "/missing.txt"};
  expect_error(o, dir + "/missing.txt: cannot open");
  o.inputs = {dir + "/ok.txt"};
  o.val_tokens = 1000;
  expect_error(o, "fewer than the 1000 requested");
  o.val_tokens = 0;
  o.out_prefix = dir + "/nodir/o";
  expect_error(o, dir + "/nodir: output directory does not exist");
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"empty.txt", "ok.txt"}));
  remove_tree(dir);
}

TEST(Prepare, StreamingEncoderEqualsWholeEncode) {
  std::string text = llm::read_file_bytes(tokt::src("data/tinyshakespeare.txt"));
  text += text.substr(0, 300000);  // > 1 MiB so that feed() encodes several batches
  std::vector<int> whole = tokt::gpt2().encode(text, llm::SpecialMode::kAsText);
  for (int threads : {1, 2}) {
    llm::StreamingEncoder enc(tokt::gpt2(), llm::SpecialMode::kAsText, threads);
    std::vector<int> got;
    for (size_t i = 0; i < text.size(); i += 4097) enc.feed(std::string_view(text).substr(i, 4097), got);
    enc.finish(got);
    EXPECT_EQ(got, whole) << threads;
  }
}

TEST(Prepare, StreamingMemoryStaysBoundedOnNonAsciiLines) {
  std::string line = "这是一个没有任何ASCII标点的中文句子，用来测试流式编码";
  std::string text;
  while (text.size() < (6u << 20)) text += line + "\n";
  llm::StreamingEncoder enc(tokt::gpt2(), llm::SpecialMode::kAsText);
  std::vector<int> got;
  size_t max_pending = 0;
  for (size_t i = 0; i < text.size(); i += 65536) {
    enc.feed(std::string_view(text).substr(i, 65536), got);
    max_pending = std::max(max_pending, enc.pending_bytes());
  }
  enc.finish(got);
  EXPECT_LT(max_pending, 2u << 20);  // cut at newlines between non-space characters
  EXPECT_EQ(got, tokt::gpt2().encode(text, llm::SpecialMode::kAsText));
}

TEST(Cli, EncodeDecodeCountAndExitCodes) {
  std::string dir = tokt::temp_dir("cli");
  std::string in = dir + "/in.txt";
  write_file(in, "Hello, I am\n\xff<|endoftext|>");
  std::string out;
  EXPECT_EQ(run_cli("encode --allow-special < " + in, &out), 0);
  EXPECT_EQ(out, "15496 11 314 716 198 187 50256\n");
  write_file(dir + "/ids.txt", out);
  EXPECT_EQ(run_cli("decode < " + dir + "/ids.txt", &out), 0);
  EXPECT_EQ(out, "Hello, I am\n\xff<|endoftext|>");
  EXPECT_EQ(run_cli("encode --special-as-text < " + in, &out), 0);
  EXPECT_EQ(out, "15496 11 314 716 198 187 27 91 437 1659 5239 91 29\n");
  EXPECT_EQ(run_cli("encode < " + in + " 2>/dev/null", &out), 2);  // disallowed by default
  EXPECT_EQ(out, "");
  write_file(dir + "/bad.txt", "1 2 50257");
  EXPECT_EQ(run_cli("decode < " + dir + "/bad.txt 2>/dev/null", &out), 2);
  EXPECT_EQ(out, "");  // nothing written on a bad id
  EXPECT_EQ(run_cli("count " + tokt::src("data/the-verdict.txt"), &out), 0);
  EXPECT_EQ(out, "5145 " + tokt::src("data/the-verdict.txt") + "\n");
  EXPECT_EQ(run_cli("count " + dir + "/missing.txt 2>/dev/null", &out), 2);
  // 1.1 MB: encoded in parallel chunks by default; tiktoken's count from the fixture either way
  const std::string shakespeare = tokt::src("data/tinyshakespeare.txt");
  size_t want = 0;
  for (const auto& f : tokt::fixture()["files"])
    if (f["path"] == "data/tinyshakespeare.txt") want = f["count"].get<size_t>();
  ASSERT_GT(want, 0u);
  for (const char* threads : {"", "--threads 1 ", "--threads 3 "}) {
    EXPECT_EQ(run_cli(std::string("count ") + threads + shakespeare, &out), 0);
    EXPECT_EQ(out, std::to_string(want) + " " + shakespeare + "\n") << threads;
  }
  EXPECT_EQ(run_cli("encode --nonsense 2>/dev/null < /dev/null", &out), 2);
  EXPECT_EQ(run_cli("encode < /dev/null", &out), 0);
  EXPECT_EQ(out, "\n");
  remove_tree(dir);
}
