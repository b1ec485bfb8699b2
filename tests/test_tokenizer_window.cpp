// test_tokenizer_window.cpp — the book's sliding-window dataset/loader against the book's numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "host/error.h"
#include "host/sliding_window.h"
#include "tests/test_tokenizer_common.h"

namespace {
std::vector<int> verdict_tokens() {
  return tokt::gpt2().encode(llm::read_file_bytes(tokt::src("data/the-verdict.txt")), llm::SpecialMode::kAllowed);
}
}  // namespace

TEST(SlidingWindow, BookChapter2Batches) {
  std::vector<int> toks = verdict_tokens();
  ASSERT_EQ(toks.size(), 5145u);
  // batch 1, max_length 4, stride 1: x = [40,367,2885,1464], y = [367,2885,1464,1807]
  llm::SlidingWindowDataset d1(toks, 4, 1);
  EXPECT_EQ(d1.size(), 5141u);
  llm::SlidingWindowLoader l1(d1, 1, false, 0, false);
  llm::WindowBatch b;
  ASSERT_TRUE(l1.next(b));
  EXPECT_EQ(b.inputs, (std::vector<int>{40, 367, 2885, 1464}));
  EXPECT_EQ(b.targets, (std::vector<int>{367, 2885, 1464, 1807}));
  // batch 8, max_length 4, stride 4: first rows 40 367 2885 1464 / 1807 3619 402 271
  llm::SlidingWindowDataset d(toks, 4, 4);
  EXPECT_EQ(d.size(), 1286u);  // ceil((5145 - 4) / 4)
  llm::SlidingWindowLoader l(d, 8, false, 0, true);
  EXPECT_EQ(l.num_batches(), 160u);
  ASSERT_TRUE(l.next(b));
  ASSERT_EQ(b.rows, 8);
  ASSERT_EQ(b.cols, 4);
  EXPECT_EQ(std::vector<int>(b.inputs.begin(), b.inputs.begin() + 8),
            (std::vector<int>{40, 367, 2885, 1464, 1807, 3619, 402, 271}));
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(b.inputs[size_t(r * 4 + c)], toks[size_t(r * 4 + c)]);
      EXPECT_EQ(b.targets[size_t(r * 4 + c)], toks[size_t(r * 4 + c + 1)]);
    }
  size_t n = 1;
  while (l.next(b)) ++n;
  EXPECT_EQ(n, 160u);
  llm::SlidingWindowLoader keep(d, 8, false, 0, false);
  EXPECT_EQ(keep.num_batches(), 161u);  // the last batch has 1286 - 160*8 = 6 rows
  for (size_t i = 0; i < 160; ++i) ASSERT_TRUE(keep.next(b));
  ASSERT_TRUE(keep.next(b));
  EXPECT_EQ(b.rows, 6);
  EXPECT_FALSE(keep.next(b));
}

TEST(SlidingWindow, BookChapter5Split) {
  std::string text = llm::read_file_bytes(tokt::src("data/the-verdict.txt"));
  size_t cut = size_t(0.9 * double(text.size()));
  ASSERT_EQ(cut, 18431u);
  auto train = tokt::gpt2().encode(text.substr(0, cut), llm::SpecialMode::kAllowed);
  auto val = tokt::gpt2().encode(text.substr(cut), llm::SpecialMode::kAllowed);
  EXPECT_EQ(train.size(), 4612u);
  EXPECT_EQ(val.size(), 534u);
  llm::SlidingWindowDataset dt(train, 256, 256), dv(val, 256, 256);
  llm::SlidingWindowLoader lt(dt, 2, true, 123, true), lv(dv, 2, false, 0, false);
  EXPECT_EQ(lt.num_batches(), 9u);  // 9 batches of 2 x 256 = 4608 tokens per epoch
  EXPECT_EQ(lv.num_batches(), 1u);
  llm::WindowBatch b;
  ASSERT_TRUE(lv.next(b));
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.cols, 256);
}

TEST(SlidingWindow, ShuffleIsAPermutationPerEpochAndReproducible) {
  std::vector<int> toks(1000);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = int(i);
  llm::SlidingWindowDataset d(toks, 10, 7);
  llm::SlidingWindowLoader a(d, 4, true, 42, false), b(d, 4, true, 42, false), c(d, 4, true, 43, false);
  EXPECT_EQ(a.order(), b.order());
  EXPECT_NE(a.order(), c.order());
  std::vector<size_t> e0 = a.order();
  a.start_epoch(1);
  EXPECT_NE(a.order(), e0);  // a new permutation each epoch
  std::vector<size_t> sorted = a.order();
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], i);
  // every window of the epoch is visited once, targets shifted by one
  std::set<int> starts;
  llm::WindowBatch batch;
  while (a.next(batch))
    for (int r = 0; r < batch.rows; ++r) {
      starts.insert(batch.inputs[size_t(r * 10)]);
      EXPECT_EQ(batch.targets[size_t(r * 10)], batch.inputs[size_t(r * 10)] + 1);
    }
  EXPECT_EQ(starts.size(), d.size());
}

TEST(SlidingWindow, RejectsBadParameters) {
  std::vector<int> t(10, 1);
  EXPECT_THROW(llm::SlidingWindowDataset(t, 10, 1), llm::Error);  // need N > max_length
  EXPECT_THROW(llm::SlidingWindowDataset(t, 0, 1), llm::Error);
  EXPECT_THROW(llm::SlidingWindowDataset(t, 4, 0), llm::Error);
  llm::SlidingWindowDataset d(t, 9, 1);
  EXPECT_EQ(d.size(), 1u);
  EXPECT_THROW(llm::SlidingWindowLoader(d, 0, false, 0, false), llm::Error);
}
