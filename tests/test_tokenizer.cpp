// test_tokenizer.cpp — the C++ GPT-2 tokenizer against tiktoken's output (fixture written by
// scripts/gen_tokenizer_cases.py), plus round trips, special-token modes, bad ids and split safety.
#include <gtest/gtest.h>

#include <random>

#include "host/error.h"
#include "tests/test_tokenizer_common.h"

using llm::SpecialMode;
using tokt::fixture;
using tokt::gpt2;

namespace {

SpecialMode mode_of(const std::string& m) {
  if (m == "allowed") return SpecialMode::kAllowed;
  if (m == "disallowed") return SpecialMode::kDisallowed;
  return SpecialMode::kAsText;
}

std::string case_bytes(const nlohmann::json& c) {
  return c.contains("hex") ? tokt::unhex(c["hex"].get<std::string>()) : c["text"].get<std::string>();
}

}  // namespace

TEST(Tokenizer, EveryFixtureCaseMatchesTiktoken) {
  const auto& cases = fixture()["cases"];
  ASSERT_GT(cases.size(), 300u);
  int errors_checked = 0;
  for (const auto& c : cases) {
    std::string text = case_bytes(c);
    SpecialMode mode = mode_of(c["mode"]);
    std::string name = c["name"].get<std::string>() + "/" + c["mode"].get<std::string>();
    if (c.contains("error_offset")) {
      try {
        gpt2().encode(text, mode);
        ADD_FAILURE() << name << ": expected a disallowed-special error";
      } catch (const llm::Error& e) {
        std::string want = "byte offset " + std::to_string(c["error_offset"].get<long>()) + " ";
        EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << name << ": " << e.what();
        ++errors_checked;
      }
      continue;
    }
    std::vector<int> want = c["ids"].get<std::vector<int>>();
    EXPECT_EQ(gpt2().encode(text, mode), want) << name;
    EXPECT_EQ(gpt2().decode(want), text) << name;  // decoding tiktoken's ids gives the bytes back
  }
  EXPECT_GT(errors_checked, 10);
}

TEST(Tokenizer, WholeFilesMatchTiktoken) {
  for (const auto& f : fixture()["files"]) {
    std::string text = llm::read_file_bytes(tokt::src(f["path"]));
    std::vector<int> ids = gpt2().encode(text, SpecialMode::kAllowed);
    EXPECT_EQ(ids.size(), f["count"].get<size_t>()) << f["path"];
    EXPECT_EQ(tokt::fnv64(ids), f["fnv64"].get<std::string>()) << f["path"];
    std::vector<int> first = f["first"].get<std::vector<int>>();
    EXPECT_TRUE(std::equal(first.begin(), first.end(), ids.begin())) << f["path"];
    EXPECT_EQ(gpt2().decode(ids), text);
    for (int threads : {2, 3, 4, 7})
      EXPECT_EQ(gpt2().encode_parallel(text, SpecialMode::kAllowed, threads), ids) << threads << " threads";
  }
  // the book's numbers
  std::string verdict = llm::read_file_bytes(tokt::src("data/the-verdict.txt"));
  std::vector<int> v = gpt2().encode(verdict);
  ASSERT_EQ(v.size(), 5145u);
  EXPECT_EQ(std::vector<int>(v.begin(), v.begin() + 8), (std::vector<int>{40, 367, 2885, 1464, 1807, 3619, 402, 271}));
}

// Almost every code point in contexts that expose its class; must equal tiktoken's stream.
TEST(Tokenizer, CodePointSweepMatchesTiktoken) {
  std::string text;
  size_t n_cp = 0;
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
      s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    else
      s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F)), s += char(0x80 | ((cp >> 6) & 0x3F)),
          s += char(0x80 | (cp & 0x3F));
    return s;
  };
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    uint32_t plane = cp >> 16;
    if (!(plane <= 3 || plane == 14 || cp % 97 == 0)) continue;
    std::string c = utf8(cp);
    text += " " + c + "x" + c + c + "1" + c + "!" + c + " " + c + "\n";
    ++n_cp;
  }
  const auto& sw = fixture()["sweep"];
  ASSERT_EQ(n_cp, sw["code_points"].get<size_t>());
  std::vector<int> ids = gpt2().encode_parallel(text, SpecialMode::kAsText, 2);
  EXPECT_EQ(ids.size(), sw["count"].get<size_t>());
  EXPECT_EQ(tokt::fnv64(ids), sw["fnv64"].get<std::string>());
}

TEST(Tokenizer, SpecialTokenModes) {
  const std::string s = "a<|endoftext|>b";
  EXPECT_EQ(gpt2().encode(s, SpecialMode::kAllowed), (std::vector<int>{64, 50256, 65}));
  EXPECT_EQ(gpt2().encode("<|endoftext|>", SpecialMode::kAsText), (std::vector<int>{27, 91, 437, 1659, 5239, 91, 29}));
  try {
    gpt2().encode("xyz <|endoftext|>", SpecialMode::kDisallowed);
    FAIL() << "no error";
  } catch (const llm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 4 "), std::string::npos) << e.what();
  }
  EXPECT_THROW(gpt2().encode(std::string(100000, 'a') + "<|endoftext|>"), llm::Error);  // default mode
  EXPECT_EQ(gpt2().decode({50256}), "<|endoftext|>");
  EXPECT_EQ(gpt2().eot(), 50256);
  EXPECT_EQ(gpt2().vocab_size(), 50257);
}

// encode_parallel cuts many chunks: special tokens in several of them give encode()'s ids, and in the
// default mode the error names the first offset, as encode() does, whichever thread sees it.
TEST(Tokenizer, ParallelSpecialTokensAndFirstError) {
  std::string text = llm::read_file_bytes(tokt::src("data/tinyshakespeare.txt")).substr(0, 600000);
  const size_t first = text.find('\n', 250000) + 1, second = text.find('\n', 500000) + 1;
  text.insert(second, "<|endoftext|>");
  text.insert(first, "<|endoftext|>");
  for (int threads : {2, 3, 8})
    EXPECT_EQ(gpt2().encode_parallel(text, SpecialMode::kAllowed, threads), gpt2().encode(text, SpecialMode::kAllowed))
        << threads << " threads";
  for (int threads : {1, 2, 8}) {
    try {
      gpt2().encode_parallel(text, SpecialMode::kDisallowed, threads);
      ADD_FAILURE() << "no error with " << threads << " threads";
    } catch (const llm::Error& e) {
      std::string want = "byte offset " + std::to_string(first) + " ";
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

TEST(Tokenizer, DecodeEveryIdAndRejectBadIds) {
  for (int id = 0; id < 50257; ++id) ASSERT_FALSE(gpt2().token_bytes(id).empty()) << id;
  EXPECT_EQ(gpt2().decode_token(198), "\n");
  EXPECT_EQ(gpt2().decode_token(220), " ");
  EXPECT_EQ(gpt2().decode_token(187), "\xFF");  // byte tokens decode to raw bytes
  EXPECT_THROW(gpt2().decode({1, 50257}), llm::Error);
  EXPECT_THROW(gpt2().decode({-1}), llm::Error);
  EXPECT_THROW(gpt2().decode_token(1 << 20), llm::Error);
}

// Any byte string round-trips, including invalid UTF-8; invalid bytes are single byte tokens.
TEST(Tokenizer, RandomBytesRoundTrip) {
  std::mt19937 rng(7);
  const char* frags[] = {"a", " ", "\n", "é", "😀", "<|endoftext|>", "'s", "1", "!", "\xff", "\xc3", "\xe2\x82", "\u00a0"};
  for (int it = 0; it < 3000; ++it) {
    std::string s;
    int len = int(rng() % 40);
    for (int k = 0; k < len; ++k) {
      if (rng() % 3 == 0) s += char(rng() & 0xFF);
      else s += frags[rng() % (sizeof frags / sizeof *frags)];
    }
    std::vector<int> ids = gpt2().encode(s, SpecialMode::kAsText);
    ASSERT_EQ(gpt2().decode(ids), s) << it;
    ASSERT_EQ(gpt2().decode(gpt2().encode(s, SpecialMode::kAllowed)), s) << it;
  }
  // the documented rule on one example: valid runs as usual, each invalid byte its own token
  std::vector<int> want = gpt2().encode("hi");
  want.push_back(187);  // byte 0xFF
  want.push_back(186);  // byte 0xFE
  want.push_back(gpt2().encode("!")[0]);
  EXPECT_EQ(gpt2().encode("hi\xff\xfe!", SpecialMode::kAsText), want);
}

// Cutting at a safe split point never changes the tokens.
TEST(Tokenizer, SafeSplitPointsDoNotChangeTokens) {
  std::mt19937 rng(11);
  const char* frags[] = {"word", " ", "\n", "\n\n", "42", "!?", ".", "'s", "\t", "é", "<|endoftext|>", "|", "x", "\r\n",
                         "  ", "A", "9", "--", "\xff", "\xc3", "中文", "\u3000", "\u00a0", "\u0085", "😀", "\xe2\x80"};
  int checked = 0;
  for (int it = 0; it < 800; ++it) {
    std::string s;
    int len = 2 + int(rng() % 25);
    for (int k = 0; k < len; ++k) s += frags[rng() % (sizeof frags / sizeof *frags)];
    for (SpecialMode m : {SpecialMode::kAllowed, SpecialMode::kAsText}) {
      std::vector<int> whole = gpt2().encode(s, m);
      for (size_t p = 1; p < s.size(); ++p) {
        if (!llm::is_safe_split(s, p)) continue;
        std::vector<int> a = gpt2().encode(std::string_view(s).substr(0, p), m);
        std::vector<int> b = gpt2().encode(std::string_view(s).substr(p), m);
        a.insert(a.end(), b.begin(), b.end());
        ASSERT_EQ(a, whole) << "cut at " << p << " of \"" << s << "\"";
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1500);
}

TEST(Tokenizer, TokenizerBinRoundTrip) {
  std::string dir = tokt::temp_dir("tokbin");
  std::string path = dir + "/gpt2_tokenizer.bin";
  gpt2().write_bin(path);
  std::string bytes = llm::read_file_bytes(path);
  ASSERT_GT(bytes.size(), 1024u);
  uint32_t h[4];
  std::memcpy(h, bytes.data(), sizeof h);
  EXPECT_EQ(h[0], 20240328u);
  EXPECT_EQ(h[1], 2u);
  EXPECT_EQ(h[2], 50257u);
  EXPECT_EQ(h[3], 50256u);
  llm::Tokenizer t = llm::Tokenizer::from_bin(path);
  for (int id = 0; id < 50257; ++id) ASSERT_EQ(t.token_bytes(id), gpt2().token_bytes(id));
  std::string verdict = llm::read_file_bytes(tokt::src("data/the-verdict.txt"));
  EXPECT_EQ(t.encode(verdict), gpt2().encode(verdict));  // encoding works from the .bin alone

  auto expect_error = [&](std::string data, const char* what) {
    try {
      llm::Tokenizer::from_bin_bytes(data, "x.bin");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const llm::Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  std::string bad = bytes;
  bad[0] ^= 1;
  expect_error(bad, "bad magic");
  expect_error(bytes.substr(0, bytes.size() - 3), "truncated");
  bad = bytes.substr(0, 1100);
  bad[8] = 0x19, bad[9] = 0, bad[10] = char(0xF6), bad[11] = 0;  // 16 million tokens claimed (fuzzer find)
  expect_error(bad, "cannot hold 16121881 tokens");
  expect_error(bytes + "x", "unexpected bytes");
  expect_error(bytes.substr(0, 100), "too small");
  bad = bytes;
  bad[4] = 9;
  expect_error(bad, "unsupported version");
  bad = bytes;
  bad[1024] = 0;
  expect_error(bad, "length 0");
  EXPECT_THROW(llm::Tokenizer::from_bin(dir + "/missing.bin"), llm::Error);
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

TEST(Tokenizer, VocabFileErrorsNameTheProblem) {
  std::string ej = llm::read_file_bytes(tokt::src("data/gpt2/encoder.json"));
  std::string vb = llm::read_file_bytes(tokt::src("data/gpt2/vocab.bpe"));
  auto expect_error = [](std::string_view e, std::string_view v, const char* what) {
    try {
      llm::Tokenizer::from_strings(e, v, "t");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const llm::Error& err) {
      EXPECT_NE(std::string(err.what()).find(what), std::string::npos) << err.what();
    }
  };
  expect_error("{\"a\": 1", vb, "not valid JSON");
  expect_error("[1,2]", vb, "JSON object");
  expect_error(ej, "", "empty file");
  expect_error(ej, "x y\n", "#version");
  // swap two merge lines: the ranks no longer match the ids
  size_t l2 = vb.find('\n') + 1, l3 = vb.find('\n', l2) + 1, l4 = vb.find('\n', l3) + 1;
  std::string swapped = vb.substr(0, l2) + vb.substr(l3, l4 - l3) + vb.substr(l2, l3 - l2) + vb.substr(l4);
  expect_error(ej, swapped, "vocab.bpe:2: merge result is out of rank order");
  expect_error(ej, vb.substr(0, vb.size() / 2), "merges but encoder.json has 50257 entries");
  std::string no_eot = ej;
  no_eot.replace(no_eot.find("<|endoftext|>"), 13, "<|endoftexx|>");
  expect_error(no_eot, vb, "no <|endoftext|> entry");
  // real files with their names
  try {
    llm::Tokenizer::from_files("/nonexistent/encoder.json", tokt::src("data/gpt2/vocab.bpe"));
    ADD_FAILURE();
  } catch (const llm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/encoder.json: cannot open"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, DefaultDirectoryFromEnvironment) {
  setenv("LLM_TOKENIZER_DIR", tokt::src("data/gpt2").c_str(), 1);
  EXPECT_EQ(llm::Tokenizer::default_dir(), tokt::src("data/gpt2"));
  EXPECT_EQ(llm::Tokenizer::from_default().encode("Hello, I am"), (std::vector<int>{15496, 11, 314, 716}));
  unsetenv("LLM_TOKENIZER_DIR");
}
