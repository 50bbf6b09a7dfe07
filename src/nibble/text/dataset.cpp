#include "nibble/text/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "nibble/core/error.h"
#include "nibble/text/dataset_encode.h"
#include "nibble/text/dataset_format.h"
#include "nibble/text/dataset_shuffle.h"
#include "nibble/text/tokenizer.h"

namespace nibble {

namespace {

// Enough of the skipped lines' messages to show what kind of problem the file has.
constexpr size_t kKeptBadLineErrors = 10;

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

bool has_target(const Example& example) {
  return std::any_of(example.loss_mask.begin() + (example.loss_mask.empty() ? 0 : 1),
                     example.loss_mask.end(), [](uint8_t m) { return m != 0; });
}

void count_tokens(const std::vector<Example>& examples, DatasetStats& stats) {
  stats.examples = static_cast<int64_t>(examples.size());
  stats.tokens = 0;
  stats.target_tokens = 0;
  for (const Example& e : examples) {
    stats.tokens += static_cast<int64_t>(e.tokens.size());
    for (size_t j = 1; j < e.loss_mask.size(); ++j) stats.target_tokens += e.loss_mask[j];
  }
}

}  // namespace

Dataset Dataset::load(const std::string& path, const Tokenizer& tokenizer,
                      const ChatTemplate* chat_template, const DatasetOptions& options) {
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in, "{}: cannot open the dataset file; expected a readable JSONL file", path);
  std::ostringstream text;
  text << in.rdbuf();
  NIBBLE_CHECK(!in.bad(), "{}: read error", path);
  return from_jsonl(text.str(), path, tokenizer, chat_template, options);
}

Dataset Dataset::from_jsonl(const std::string& jsonl, const std::string& where,
                            const Tokenizer& tokenizer, const ChatTemplate* chat_template,
                            const DatasetOptions& options) {
  NIBBLE_CHECK(options.max_seq_length >= 2,
               "{}: max_seq_length is {}; expected at least 2 (a token and its target)", where,
               options.max_seq_length);
  Dataset data;
  data.source_ = where;
  data.max_seq_length_ = options.max_seq_length;
  data.pad_id_ = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  data.format_ = options.format;
  DatasetStats& stats = data.stats_;

  EncodeContext context;
  context.tokenizer = &tokenizer;
  context.chat_template = chat_template;
  context.wrap = special_wrap_of(tokenizer);
  context.train_on_inputs = options.train_on_inputs;
  context.add_eos = options.add_eos;

  int64_t format_line = 0;  // the line that fixed the format, when detected
  std::string_view rest(jsonl);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // a UTF-8 byte order mark
  for (int64_t line_no = 1; !rest.empty(); ++line_no) {
    const size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    if (is_blank(line)) continue;
    ++stats.lines;
    try {
      DataRecord record = parse_data_line(line, options.format, where, line_no);
      if (data.format_ == DataFormat::detect) {
        data.format_ = record.format;
        format_line = line_no;
      } else if (record.format != data.format_) {
        fail("{}:{}: this line is {}, but line {} was {}; expected every line in one format (or "
             "set the format option)",
             where, line_no, data_format_name(record.format), format_line,
             data_format_name(data.format_));
      }
      Example example = encode_record(record, context, where, line_no);
      const auto limit = static_cast<size_t>(options.max_seq_length);
      if (example.tokens.size() > limit) {
        ++stats.truncated_examples;
        stats.truncated_tokens += static_cast<int64_t>(example.tokens.size() - limit);
        example.tokens.resize(limit);
        example.loss_mask.resize(limit);
      }
      if (!has_target(example)) {
        ++stats.examples_without_targets;
        continue;
      }
      data.examples_.push_back(std::move(example));
    } catch (const Error& e) {
      if (!options.skip_bad_lines) throw;
      ++stats.bad_lines;
      if (stats.bad_line_errors.size() < kKeptBadLineErrors)
        stats.bad_line_errors.push_back(e.what());
    }
  }

  NIBBLE_CHECK(stats.lines > 0, "{}: the file is empty; expected JSONL, one example per line",
               where);
  if (data.examples_.empty())
    fail("{}: no usable examples: of {} lines, {} were bad and skipped{}{}, {} had no target "
         "token (a prompt longer than max_seq_length {}, or a chat with no assistant turn)",
         where, stats.lines, stats.bad_lines, stats.bad_line_errors.empty() ? "" : "; the first: ",
         stats.bad_line_errors.empty() ? "" : stats.bad_line_errors.front(),
         stats.examples_without_targets, options.max_seq_length);
  count_tokens(data.examples_, stats);
  return data;
}

Dataset::Split Dataset::split(double eval_ratio, uint64_t seed) const {
  const int64_t n = size();
  NIBBLE_CHECK(eval_ratio >= 0.0 && eval_ratio < 1.0,
               "{}: eval_split_ratio is {}; expected a fraction in [0, 1)", source_, eval_ratio);
  int64_t eval_n = std::llround(static_cast<double>(n) * eval_ratio);
  if (eval_ratio > 0.0 && eval_n == 0) eval_n = 1;
  NIBBLE_CHECK(eval_n < n,
               "{}: eval_split_ratio {} of {} examples leaves none to train on; expected a "
               "smaller ratio or more data",
               source_, eval_ratio, n);

  std::vector<int64_t> order = shuffled_order(n, seed, kSplitStream);
  std::vector<int64_t> eval_ids(order.begin(), order.begin() + eval_n);
  std::vector<int64_t> train_ids(order.begin() + eval_n, order.end());
  std::sort(eval_ids.begin(), eval_ids.end());
  std::sort(train_ids.begin(), train_ids.end());

  auto subset = [this](const std::vector<int64_t>& ids) {
    Dataset part;
    part.stats_ = stats_;
    part.format_ = format_;
    part.max_seq_length_ = max_seq_length_;
    part.pad_id_ = pad_id_;
    part.source_ = source_;
    part.examples_.reserve(ids.size());
    for (int64_t i : ids) part.examples_.push_back(examples_[static_cast<size_t>(i)]);
    count_tokens(part.examples_, part.stats_);
    return part;
  };
  return Split{subset(train_ids), subset(eval_ids)};
}

}  // namespace nibble
