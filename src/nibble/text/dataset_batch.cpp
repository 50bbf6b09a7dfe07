#include "nibble/text/dataset_batch.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "nibble/core/error.h"
#include "nibble/text/dataset_shuffle.h"

namespace nibble {

namespace {

// Writes example e at columns [column, column + L) of a row starting at flat offset row_start.
void write_example(const Example& e, int32_t sequence_id, int64_t row_start, int64_t column,
                   Batch& batch) {
  const size_t n = e.tokens.size();
  for (size_t j = 0; j < n; ++j) {
    const auto at = static_cast<size_t>(row_start + column) + j;
    batch.input_ids[at] = e.tokens[j];
    const bool target = j + 1 < n && e.loss_mask[j + 1] != 0;
    batch.labels[at] = target ? e.tokens[j + 1] : kIgnoreIndex;
    batch.target_tokens += target ? 1 : 0;
    batch.positions[at] = static_cast<int32_t>(j);
    batch.sequence_ids[at] = sequence_id;
  }
  batch.cu_seqlens.push_back(static_cast<int32_t>(row_start + column + static_cast<int64_t>(n)));
}

// Padding over columns [column, T): its own segment, never a target.
void write_padding(int32_t pad_id, int64_t row_start, int64_t column, Batch& batch) {
  const int64_t t_len = batch.seq_length;
  if (column >= t_len) return;
  for (int64_t t = column; t < t_len; ++t) {
    const auto at = static_cast<size_t>(row_start + t);
    batch.input_ids[at] = pad_id;
    batch.labels[at] = kIgnoreIndex;
    batch.positions[at] = static_cast<int32_t>(t - column);
    batch.sequence_ids[at] = -1;
  }
  batch.cu_seqlens.push_back(static_cast<int32_t>(row_start + t_len));
}

}  // namespace

Tensor Batch::tensor(const std::vector<int32_t>& field) const {
  NIBBLE_CHECK(static_cast<int64_t>(field.size()) == rows * seq_length,
               "Batch::tensor: a field of {} values; expected B * T = {} * {}", field.size(), rows,
               seq_length);
  Tensor out = Tensor::empty({rows, seq_length}, DType::i32);
  if (!field.empty()) std::memcpy(out.data(), field.data(), field.size() * sizeof(int32_t));
  return out;
}

BatchIterator::BatchIterator(const Dataset& data, const BatchOptions& options)
    : data_(&data), options_(options) {
  NIBBLE_CHECK(options.batch_size >= 1, "batch size is {}; expected at least 1",
               options.batch_size);
  NIBBLE_CHECK(options.epochs >= 0, "epochs is {}; expected 0 or more", options.epochs);
  NIBBLE_CHECK(data.size() > 0, "{}: the dataset has no examples to batch", data.source());
}

std::vector<int64_t> BatchIterator::order_of(int64_t epoch) const {
  const int64_t n = data_->size();
  if (options_.shuffle)
    return shuffled_order(n, options_.seed, kEpochStream + static_cast<uint64_t>(epoch));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

const std::vector<int64_t>& BatchIterator::current_order() {
  if (order_epoch_ != position_.epoch) {
    order_ = order_of(position_.epoch);
    order_epoch_ = position_.epoch;
  }
  return order_;
}

int64_t BatchIterator::row_take(const std::vector<int64_t>& order, int64_t index) const {
  if (!options_.packing) return 1;
  const auto n = static_cast<int64_t>(order.size());
  int64_t used = 0, take = 0;
  while (index + take < n) {
    const auto len = static_cast<int64_t>(
        (*data_)[order[static_cast<size_t>(index + take)]].tokens.size());
    if (take > 0 && used + len > data_->max_seq_length()) break;
    used += len;
    ++take;
  }
  return take;
}

void BatchIterator::restore(const DataPosition& position) {
  NIBBLE_CHECK(position.epoch >= 0 && position.index >= 0 && position.index < data_->size(),
               "data position (epoch {}, index {}) is outside this dataset of {} examples; "
               "expected the data and options the checkpoint was made with",
               position.epoch, position.index, data_->size());
  position_ = position;
}

int64_t BatchIterator::batches_in_epoch(int64_t epoch) const {
  const std::vector<int64_t> order = order_of(epoch);
  const auto n = static_cast<int64_t>(order.size());
  int64_t batches = 0;
  for (int64_t index = 0; index < n; ++batches)
    for (int64_t row = 0; row < options_.batch_size && index < n; ++row)
      index += row_take(order, index);
  return batches;
}

bool BatchIterator::next(Batch& batch) {
  if (done()) return false;
  const std::vector<int64_t>& order = current_order();
  const auto n = static_cast<int64_t>(order.size());

  // Which examples go in which row.
  std::vector<std::pair<int64_t, int64_t>> rows;  // (first index into order, count)
  int64_t index = position_.index;
  int64_t longest = 0;
  while (static_cast<int64_t>(rows.size()) < options_.batch_size && index < n) {
    const int64_t take = row_take(order, index);
    rows.emplace_back(index, take);
    for (int64_t k = 0; k < take; ++k)
      longest = std::max(longest, static_cast<int64_t>(
                                      (*data_)[order[static_cast<size_t>(index + k)]].tokens.size()));
    index += take;
  }

  batch = Batch{};
  batch.epoch = position_.epoch;
  batch.rows = static_cast<int64_t>(rows.size());
  batch.seq_length =
      (!options_.packing && options_.pad_to_longest) ? longest : data_->max_seq_length();
  const auto total = static_cast<size_t>(batch.rows * batch.seq_length);
  batch.input_ids.resize(total);
  batch.labels.resize(total);
  batch.positions.resize(total);
  batch.sequence_ids.resize(total);
  batch.cu_seqlens.push_back(0);
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t row_start = static_cast<int64_t>(r) * batch.seq_length;
    int64_t column = 0;
    for (int64_t k = 0; k < rows[r].second; ++k) {
      const Example& e = (*data_)[order[static_cast<size_t>(rows[r].first + k)]];
      write_example(e, static_cast<int32_t>(k), row_start, column, batch);
      column += static_cast<int64_t>(e.tokens.size());
    }
    write_padding(data_->pad_id(), row_start, column, batch);
    batch.examples += rows[r].second;
  }

  position_.index = index;
  if (index >= n) position_ = DataPosition{position_.epoch + 1, 0};
  return true;
}

}  // namespace nibble
