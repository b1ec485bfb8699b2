// Fine-tuning data path: the book's collate example, the Alpaca template byte for byte, CSV quoting and errors,
// JSON errors, the 85/10/5 split, ROUGE-L closed forms.
#include <gtest/gtest.h>

#include "host/error.h"
#include "host/finetune_data.h"

using namespace llm;

namespace {
template <class F>
std::string error_of(F&& f) {
  try { f(); } catch (const Error& e) { return e.what(); }
  return "";
}
}  // namespace

TEST(FinetuneCollate, BookExample) {
  // the book: items [0..4], [5,6], [7,8,9] -> inputs padded with 50256, targets with -100 after the first pad
  const std::vector<std::vector<int>> items = {{0, 1, 2, 3, 4}, {5, 6}, {7, 8, 9}};
  const CollatedBatch b = collate_instructions(items);
  ASSERT_EQ(b.B, 3);
  ASSERT_EQ(b.T, 5);
  const std::vector<int> in = {0, 1, 2, 3, 4, 5, 6, 50256, 50256, 50256, 7, 8, 9, 50256, 50256};
  const std::vector<int> tg = {1, 2, 3, 4, 50256, 6, 50256, -100, -100, -100, 8, 9, 50256, -100, -100};
  EXPECT_EQ(b.inputs, in);
  EXPECT_EQ(b.targets, tg);
}

TEST(FinetuneCollate, MaxLengthAndPromptMask) {
  const std::vector<std::vector<int>> items = {{0, 1, 2, 3, 4}, {5, 6}, {7, 8, 9}};
  const CollatedBatch b = collate_instructions(items, 50256, -100, 3);
  ASSERT_EQ(b.T, 3);
  EXPECT_EQ(b.targets, (std::vector<int>{1, 2, 3, 6, 50256, -100, 8, 9, 50256}));
  const std::vector<int> prompt = {3, 1, 2};  // prompt of 3 tokens: its first 2 targets are prompt tokens
  const CollatedBatch m = collate_instructions(items, 50256, -100, 0, &prompt);
  EXPECT_EQ(m.targets, (std::vector<int>{-100, -100, 3, 4, 50256, 6, 50256, -100, -100, -100, -100, 9, 50256, -100, -100}));
}

TEST(FinetuneTemplate, AlpacaByteExact) {
  InstructionEntry e{"Rewrite the sentence using a simile.", "The car is very fast.", "The car is as fast as lightning."};
  EXPECT_EQ(format_input(e),
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\nRewrite the sentence using a simile.\n\n### Input:\nThe car is very fast.");
  EXPECT_EQ(format_training_text(e), format_input(e) + "\n\n### Response:\nThe car is as fast as lightning.");
  InstructionEntry no_input{"What is the capital of France?", "", "Paris."};
  EXPECT_EQ(format_input(no_input),
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\nWhat is the capital of France?");
}

TEST(FinetuneCsv, QuotingAndLines) {
  const std::string csv = "Label,Text\n0,plain text\n1,\"quoted, with comma and \"\"quotes\"\"\"\r\n0,\"two\nlines\"\n1,last";
  const auto rows = parse_labeled_csv(csv, "mem.csv", {"0", "1"});
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].text, "plain text");
  EXPECT_EQ(rows[1].text, "quoted, with comma and \"quotes\"");
  EXPECT_EQ(rows[1].label, 1);
  EXPECT_EQ(rows[2].text, "two\nlines");
  EXPECT_EQ(rows[2].line, 4);
  EXPECT_EQ(rows[3].line, 6);
  // TSV with the columns the other way round and named labels
  const auto t = parse_labeled_csv("Text\tLabel\nhello\tspam\n", "mem.tsv", {"ham", "spam"}, '\t');
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].label, 1);
}

TEST(FinetuneCsv, ErrorsNameTheLine) {
  const std::vector<std::string> cls = {"0", "1"};
  EXPECT_EQ(error_of([&] { parse_labeled_csv("Label,Text\n0,ok\n2,bad label\n", "f.csv", cls); }),
            "f.csv:3: label '2' is not in the class set {0, 1}");
  EXPECT_EQ(error_of([&] { parse_labeled_csv("Label,Text\n0,ok\n1,\n", "f.csv", cls); }), "f.csv:3: empty text");
  EXPECT_EQ(error_of([&] { parse_labeled_csv("Label,Text\n0,ok\n1,\"open quote\n0,x\n", "f.csv", cls); }),
            "f.csv:3: unterminated quoted field");
  EXPECT_EQ(error_of([&] { parse_labeled_csv("Label,Text\n0,ok\n1,\"a\"b\n", "f.csv", cls); }),
            "f.csv:3: unexpected character 'b' after a closing quote");
  EXPECT_EQ(error_of([&] { parse_labeled_csv("Label,Text\n0,a,b\n", "f.csv", cls); }),
            "f.csv:2: expected 2 fields, found 3");
  EXPECT_EQ(error_of([&] { parse_labeled_csv("Class,Message\n0,a\n", "f.csv", cls); }),
            "f.csv:1: header must name columns 'Label' and 'Text'");
  EXPECT_EQ(error_of([&] { parse_labeled_csv("", "f.csv", cls); }).rfind("f.csv: empty file", 0), 0u);
}

TEST(FinetuneCsv, BookSpamSplitCounts) {
  const std::string dir = std::string(LLM_SOURCE_DIR) + "/data/finetune/";
  const auto tr = read_labeled_csv(dir + "sms_spam_train.csv", {"0", "1"});
  const auto va = read_labeled_csv(dir + "sms_spam_validation.csv", {"0", "1"});
  const auto te = read_labeled_csv(dir + "sms_spam_test.csv", {"0", "1"});
  EXPECT_EQ(tr.size(), 1045u);
  EXPECT_EQ(va.size(), 149u);
  EXPECT_EQ(te.size(), 300u);
  int spam = 0;
  for (const auto& r : tr) spam += r.label;
  EXPECT_EQ(spam, 517);  // SOURCES.md: 528 ham / 517 spam
}

TEST(FinetuneJson, SplitAndErrors) {
  const auto all = read_instruction_json(std::string(LLM_SOURCE_DIR) + "/data/finetune/instruction-data.json");
  ASSERT_EQ(all.size(), 1100u);
  const auto s = split_instructions(all);
  EXPECT_EQ(s.train.size(), 935u);
  EXPECT_EQ(s.test.size(), 110u);
  EXPECT_EQ(s.val.size(), 55u);
  EXPECT_EQ(s.test[0].instruction, all[935].instruction);
  int empty_inputs = 0;
  for (const auto& e : all) empty_inputs += e.input.empty();
  EXPECT_EQ(empty_inputs, 775);
  EXPECT_EQ(error_of([] { parse_instruction_json("[\n  {\"instruction\": \"a\",\n   \"output\": }\n]", "x.json"); }),
            "x.json: malformed JSON at line 3, column 14 (byte 38)");
  EXPECT_EQ(error_of([] { parse_instruction_json("[{\"instruction\": \"a\"}]", "x.json"); }),
            "x.json: entry 0 has no \"output\"");
  EXPECT_EQ(error_of([] { parse_instruction_json("{}", "x.json"); }),
            "x.json: expected a JSON array of {instruction, input, output} objects");
}

TEST(FinetuneScores, RougeL) {
  EXPECT_DOUBLE_EQ(rouge_l_f1("the cat sat", "the cat sat"), 1.0);
  EXPECT_DOUBLE_EQ(rouge_l_f1("a b", "c d"), 0.0);
  // LCS("the cat sat on mat", "the cat on the mat") = "the cat on mat" = 4; P = 4/5, R = 4/5 -> 0.8
  // P, R and 2PR/(P+R) in double: ≤ 6 roundings of values ≤ 1 (2^-53 ≈ 1.1e-16 each) ≈ 7e-16 < 1e-15
  EXPECT_NEAR(rouge_l_f1("the cat sat on mat", "the cat on the mat"), 0.8, 1e-15);
  // LCS("a b c d", "a c") = 2; P = 2/4, R = 2/2 -> F1 = 2/3
  EXPECT_NEAR(rouge_l_f1("a b c d", "a c"), 2.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(rouge_l_f1("", "x"), 0.0);
  EXPECT_TRUE(exact_match("  Paris.\n", "Paris."));
  EXPECT_FALSE(exact_match("paris.", "Paris."));
}
