// Dataset -> batches of token rows for the train loop, shuffled per epoch from a seed, with a
// data position (epoch, index) that a checkpoint saves to resume exactly.
//
// Dimension letters: B = rows in the batch, T = tokens per row.
//
// Packing (the default): each row is filled with whole examples, in the epoch's order, while the
// next one fits in T = max_seq_length; the rest of the row is padding. Padded mode: one example
// per row, T = max_seq_length (or the batch's longest example with pad_to_longest).
//
// Per token, at row b, column t (all I32 [B, T], row-major):
//   input_ids     the token; padding holds the dataset's pad id
//   labels        next-token targets, already shifted: labels[t] = input_ids[t + 1] when that
//                 token is a target of the same example, else kIgnoreIndex (-100): prompts,
//                 the last token of each example (nothing of its own follows), padding
//   positions     0, 1, 2, ... restarting at each example (and at each padding run), for RoPE
//   sequence_ids  0, 1, 2, ... per example within the row; -1 on padding. Attention must be
//                 causal within one sequence id, so no example sees another.
// cu_seqlens: the same segments as offsets into the flattened B * T tokens (examples and
// padding runs each a segment), [0, ..., B * T], for variable-length attention kernels.
//
// Epoch e visits the examples in the order shuffled_order(n, seed, kEpochStream + e)
// (dataset_shuffle.h), or in file order without shuffle. The last batch of an epoch may have
// fewer than B rows; batches never mix epochs.
#pragma once

#include <cstdint>
#include <vector>

#include "nibble/core/tensor.h"
#include "nibble/text/dataset.h"

namespace nibble {

constexpr int32_t kIgnoreIndex = -100;

struct BatchOptions {
  int64_t batch_size = 1;  // B
  bool packing = true;
  bool pad_to_longest = false;  // padded mode only: T = the longest example in the batch
  bool shuffle = true;
  uint64_t seed = 42;
  int64_t epochs = 1;
};

// Where the next batch starts: example `index` of epoch `epoch`'s order.
struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const DataPosition& o) const { return epoch == o.epoch && index == o.index; }
};

struct Batch {
  int64_t rows = 0;        // B
  int64_t seq_length = 0;  // T
  std::vector<int32_t> input_ids, labels, positions, sequence_ids;  // [B, T]
  std::vector<int32_t> cu_seqlens;                                   // [segments + 1]
  int64_t examples = 0;       // examples in the batch
  int64_t target_tokens = 0;  // labels != kIgnoreIndex, to normalise the loss
  int64_t epoch = 0;

  // One of the [B, T] fields as an I32 [B, T] CPU tensor (a copy).
  Tensor tensor(const std::vector<int32_t>& field) const;
};

class BatchIterator {
 public:
  // `data` must outlive the iterator.
  BatchIterator(const Dataset& data, const BatchOptions& options);

  // Fills the next batch and returns true; false once all epochs are done.
  bool next(Batch& batch);
  bool done() const { return position_.epoch >= options_.epochs; }

  DataPosition state() const { return position_; }
  // Continues from a position state() returned (with the same data and options).
  void restore(const DataPosition& position);

  // How many batches epoch e gives (packing depends on the order, so it is counted).
  int64_t batches_in_epoch(int64_t epoch) const;

 private:
  std::vector<int64_t> order_of(int64_t epoch) const;
  const std::vector<int64_t>& current_order();
  // The examples of the next row starting at order[index]: how many to take.
  int64_t row_take(const std::vector<int64_t>& order, int64_t index) const;

  const Dataset* data_;
  BatchOptions options_;
  DataPosition position_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace nibble
