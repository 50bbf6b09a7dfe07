// Batching: packing boundaries, positions, sequence ids and labels; padding; shuffling from a
// seed; resume from a data position; the eval split.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"
#include "nibble/text/dataset_shuffle.h"
#include "nibble/text/tokenizer.h"

namespace nibble {
namespace {

const std::string kGolden = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden";

// n text lines of varied lengths ("w0", "w0 w1", ...), so packed rows hold several examples.
std::string text_lines(int n) {
  std::string jsonl;
  for (int i = 0; i < n; ++i) {
    std::string text;
    for (int w = 0; w <= i % 5; ++w) text += (w ? " w" : "w") + std::to_string(i * 7 + w);
    jsonl += "{\"text\": \"" + text + "\"}\n";
  }
  return jsonl;
}

struct Fixture {
  Tokenizer tok = Tokenizer::load(kGolden + "/tokenizers/llama3");
  Dataset make(const std::string& jsonl, int64_t max_seq_length) const {
    DatasetOptions options;
    options.max_seq_length = max_seq_length;
    return Dataset::from_jsonl(jsonl, "b.jsonl", tok, nullptr, options);
  }
};

std::vector<Batch> all_batches(BatchIterator& it) {
  std::vector<Batch> out;
  Batch b;
  while (it.next(b)) out.push_back(b);
  return out;
}

// Checks every per-token invariant of a batch against the dataset, and returns the examples in
// it (as token vectors, in order).
std::vector<std::vector<int32_t>> check_batch(const Batch& b, const Dataset& data) {
  std::vector<std::vector<int32_t>> examples;
  const int64_t t_len = b.seq_length;
  EXPECT_EQ(b.input_ids.size(), static_cast<size_t>(b.rows * t_len));
  EXPECT_EQ(b.cu_seqlens.front(), 0);
  EXPECT_EQ(b.cu_seqlens.back(), b.rows * t_len);
  std::set<int32_t> boundaries(b.cu_seqlens.begin(), b.cu_seqlens.end());
  int64_t targets = 0;
  for (int64_t r = 0; r < b.rows; ++r) {
    int32_t expected_seq = 0;
    for (int64_t t = 0; t < t_len;) {
      const int64_t at = r * t_len + t;
      EXPECT_TRUE(boundaries.count(static_cast<int32_t>(at))) << "segment start " << at;
      if (b.sequence_ids[at] < 0) {  // padding to the row's end
        for (int64_t p = t; p < t_len; ++p) {
          EXPECT_EQ(b.sequence_ids[r * t_len + p], -1);
          EXPECT_EQ(b.input_ids[r * t_len + p], data.pad_id());
          EXPECT_EQ(b.labels[r * t_len + p], kIgnoreIndex);
          EXPECT_EQ(b.positions[r * t_len + p], p - t);
        }
        break;
      }
      EXPECT_EQ(b.sequence_ids[at], expected_seq++);
      std::vector<int32_t> tokens;
      int64_t end = t;
      while (end < t_len && b.sequence_ids[r * t_len + end] == b.sequence_ids[at]) {
        EXPECT_EQ(b.positions[r * t_len + end], end - t);  // restarts at 0 per example
        tokens.push_back(b.input_ids[r * t_len + end]);
        ++end;
      }
      // The example this must be, by its tokens; then its labels from its mask.
      auto found = std::find_if(data.examples().begin(), data.examples().end(),
                                [&](const Example& e) { return e.tokens == tokens; });
      EXPECT_NE(found, data.examples().end());
      if (found != data.examples().end()) {
        for (size_t j = 0; j < tokens.size(); ++j) {
          const int32_t label = b.labels[r * t_len + t + static_cast<int64_t>(j)];
          if (j + 1 < tokens.size() && found->loss_mask[j + 1]) {
            EXPECT_EQ(label, tokens[j + 1]);
            ++targets;
          } else {
            EXPECT_EQ(label, kIgnoreIndex);  // incl. the last token: no crossing into the next
          }
        }
      }
      examples.push_back(tokens);
      t = end;
    }
  }
  EXPECT_EQ(b.target_tokens, targets);
  return examples;
}

TEST(DatasetBatches, PackingFillsRowsWithWholeExamplesInOrder) {
  Fixture f;
  Dataset data = f.make(text_lines(23), 16);
  BatchOptions options;
  options.batch_size = 2;
  options.shuffle = false;
  BatchIterator it(data, options);
  std::vector<std::vector<int32_t>> seen;
  int64_t batches = 0;
  Batch b;
  while (it.next(b)) {
    ++batches;
    EXPECT_EQ(b.seq_length, 16);
    for (auto& e : check_batch(b, data)) seen.push_back(e);
  }
  ASSERT_EQ(static_cast<int64_t>(seen.size()), data.size());
  for (int64_t i = 0; i < data.size(); ++i) EXPECT_EQ(seen[i], data[i].tokens);
  EXPECT_EQ(batches, BatchIterator(data, options).batches_in_epoch(0));
  EXPECT_LT(batches, (data.size() + 1) / 2);  // packing did put several examples in a row
}

TEST(DatasetBatches, PackedLabelsByHand) {
  Fixture f;
  // "Hello world" = [0, 44, 73, 776, 1187, 2] (BOS ... EOS); two of them fill a row of 12.
  Dataset data = f.make("{\"text\": \"Hello world\"}\n{\"text\": \"Hello world\"}\n", 12);
  BatchOptions options;
  options.shuffle = false;
  BatchIterator it(data, options);
  Batch b;
  ASSERT_TRUE(it.next(b));
  EXPECT_EQ(b.rows, 1);
  EXPECT_EQ(b.examples, 2);
  EXPECT_EQ(b.input_ids, (std::vector<int32_t>{0, 44, 73, 776, 1187, 2, 0, 44, 73, 776, 1187, 2}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{44, 73, 776, 1187, 2, -100, 44, 73, 776, 1187, 2, -100}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(b.sequence_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.cu_seqlens, (std::vector<int32_t>{0, 6, 12}));
  EXPECT_EQ(b.target_tokens, 10);
  EXPECT_FALSE(it.next(b));

  Tensor labels = b.tensor(b.labels);
  EXPECT_EQ(labels.dtype(), DType::i32);
  EXPECT_EQ(labels.shape(), (Shape{1, 12}));
  EXPECT_EQ(labels.data_as<int32_t>()[5], kIgnoreIndex);
}

TEST(DatasetBatches, PackedRowPadsWhenNextExampleDoesNotFit) {
  Fixture f;
  Dataset data = f.make("{\"text\": \"Hello world\"}\n{\"text\": \"Hello world\"}\n", 8);
  BatchOptions options;
  options.shuffle = false;
  options.batch_size = 4;
  BatchIterator it(data, options);
  Batch b;
  ASSERT_TRUE(it.next(b));
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.sequence_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0, -1, -1}));
  EXPECT_EQ(b.cu_seqlens, (std::vector<int32_t>{0, 6, 8, 14, 16}));
  check_batch(b, data);
}

TEST(DatasetBatches, AlpacaPromptLabelsIgnored) {
  Fixture f;
  DatasetOptions options;
  options.max_seq_length = 256;
  Dataset data = Dataset::from_jsonl(R"({"instruction": "Name a color.", "output": "Blue."})",
                                     "a.jsonl", f.tok, nullptr, options);
  BatchIterator it(data, BatchOptions{});
  Batch b;
  ASSERT_TRUE(it.next(b));
  check_batch(b, data);
  // Response "Blue." (4 tokens) + EOS are the targets; they are predicted from positions 99..103.
  EXPECT_EQ(b.target_tokens, 5);
  for (int64_t t = 0; t < 99; ++t) EXPECT_EQ(b.labels[t], kIgnoreIndex) << t;
  EXPECT_EQ(b.labels[103], 2);
}

TEST(DatasetBatches, PaddedModeOneExamplePerRow) {
  Fixture f;
  Dataset data = f.make(text_lines(5), 16);
  BatchOptions options;
  options.packing = false;
  options.shuffle = false;
  options.batch_size = 2;
  BatchIterator it(data, options);
  std::vector<Batch> batches = all_batches(it);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].rows, 1);  // the epoch's last batch is short
  int64_t i = 0;
  for (const Batch& b : batches) {
    EXPECT_EQ(b.seq_length, 16);
    auto examples = check_batch(b, data);
    ASSERT_EQ(static_cast<int64_t>(examples.size()), b.rows);
    for (auto& e : examples) EXPECT_EQ(e, data[i++].tokens);
  }

  options.pad_to_longest = true;
  BatchIterator longest(data, options);
  Batch b;
  ASSERT_TRUE(longest.next(b));
  EXPECT_EQ(b.seq_length, static_cast<int64_t>(std::max(data[0].tokens.size(), data[1].tokens.size())));
  check_batch(b, data);
}

TEST(DatasetBatches, ShuffleIsFixedBySeedAndDiffersPerEpoch) {
  // The permutation is a fixed function of (n, seed, stream): pinned so that a change to the
  // generator or the Fisher-Yates loop cannot go unnoticed (resume across versions relies on it).
  // The values were also computed by a separate Python transcription of Philox4x32-10 + this loop.
  const std::vector<int64_t> order = shuffled_order(10, 42, kEpochStream);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(order, shuffled_order(10, 42, kEpochStream));
  EXPECT_NE(order, shuffled_order(10, 43, kEpochStream));
  EXPECT_NE(order, shuffled_order(10, 42, kEpochStream + 1));
  EXPECT_EQ(order, (std::vector<int64_t>{2, 9, 1, 5, 8, 7, 0, 6, 4, 3}));

  Fixture f;
  Dataset data = f.make(text_lines(30), 24);
  BatchOptions options;
  options.batch_size = 3;
  options.seed = 7;
  options.epochs = 2;
  BatchIterator a(data, options), b(data, options);
  std::vector<Batch> first = all_batches(a), second = all_batches(b);
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].input_ids, second[i].input_ids);
    EXPECT_EQ(first[i].labels, second[i].labels);
  }
  // Every example once per epoch.
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<std::vector<int32_t>> seen;
    for (const Batch& batch : first)
      if (batch.epoch == epoch)
        for (auto& e : check_batch(batch, data)) seen.push_back(e);
    EXPECT_EQ(static_cast<int64_t>(seen.size()), data.size());
  }
  options.seed = 8;
  BatchIterator c(data, options);
  Batch x;
  ASSERT_TRUE(c.next(x));
  EXPECT_NE(x.input_ids, first[0].input_ids);
}

TEST(DatasetBatches, ResumeFromDataPositionGivesTheSameBatches) {
  Fixture f;
  Dataset data = f.make(text_lines(17), 20);
  BatchOptions options;
  options.batch_size = 2;
  options.seed = 3;
  options.epochs = 3;
  BatchIterator reference(data, options);
  std::vector<Batch> expected = all_batches(reference);
  ASSERT_GT(expected.size(), 6u);
  const int64_t per_epoch = reference.batches_in_epoch(0);

  // Stop after k batches (before, at and past an epoch boundary), restore into a fresh iterator.
  for (size_t k : {size_t{1}, static_cast<size_t>(per_epoch), static_cast<size_t>(per_epoch + 2)}) {
    SCOPED_TRACE(k);
    BatchIterator first(data, options);
    Batch b;
    for (size_t i = 0; i < k; ++i) ASSERT_TRUE(first.next(b));
    const DataPosition saved = first.state();
    if (k == static_cast<size_t>(per_epoch)) EXPECT_EQ(saved, (DataPosition{1, 0}));

    BatchIterator resumed(data, options);
    resumed.restore(saved);
    std::vector<Batch> rest = all_batches(resumed);
    ASSERT_EQ(rest.size(), expected.size() - k);
    for (size_t i = 0; i < rest.size(); ++i) {
      EXPECT_EQ(rest[i].input_ids, expected[k + i].input_ids);
      EXPECT_EQ(rest[i].labels, expected[k + i].labels);
      EXPECT_EQ(rest[i].positions, expected[k + i].positions);
      EXPECT_EQ(rest[i].epoch, expected[k + i].epoch);
    }
  }
  EXPECT_TRUE(reference.done());
  EXPECT_EQ(reference.state(), (DataPosition{3, 0}));
}

TEST(DatasetBatches, RestoreRejectsAPositionOutsideTheData) {
  Fixture f;
  Dataset data = f.make(text_lines(4), 16);
  BatchIterator it(data, BatchOptions{});
  EXPECT_THROW(it.restore(DataPosition{0, 4}), Error);
  EXPECT_THROW(it.restore(DataPosition{-1, 0}), Error);
}

TEST(DatasetBatches, EvalSplitFromSeed) {
  Fixture f;
  Dataset data = f.make(text_lines(40), 16);
  Dataset::Split split = data.split(0.1, 42);
  EXPECT_EQ(split.eval.size(), 4);
  EXPECT_EQ(split.train.size(), 36);
  std::set<int64_t> lines;
  for (const Example& e : split.train.examples()) lines.insert(e.line);
  for (const Example& e : split.eval.examples()) EXPECT_TRUE(lines.insert(e.line).second);
  EXPECT_EQ(lines.size(), 40u);
  for (int64_t i = 1; i < split.eval.size(); ++i) EXPECT_LT(split.eval[i - 1].line, split.eval[i].line);

  Dataset::Split again = data.split(0.1, 42);
  Dataset::Split other = data.split(0.1, 43);
  std::vector<int64_t> a, b, c;
  for (const Example& e : split.eval.examples()) a.push_back(e.line);
  for (const Example& e : again.eval.examples()) b.push_back(e.line);
  for (const Example& e : other.eval.examples()) c.push_back(e.line);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(data.split(0.001, 1).eval.size(), 1);  // a ratio > 0 gives at least one
  EXPECT_EQ(data.split(0.0, 1).eval.size(), 0);
  EXPECT_THROW(data.split(1.0, 1), Error);
  EXPECT_THROW(data.split(-0.1, 1), Error);
}

TEST(DatasetBatches, UniformBelowCoversTheRange) {
  Rng rng(5);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) ++counts[uniform_below(rng, 7)];
  for (int c : counts) EXPECT_GT(c, 800);  // 1000 expected each; 800 is > 6 sigma away
  EXPECT_EQ(uniform_below(rng, 1), 0u);
}

}  // namespace
}  // namespace nibble
