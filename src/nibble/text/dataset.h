// A JSONL training set, tokenized: each line becomes one Example (token ids + a per-token loss
// mask). Batching (packing or padding, shuffling, resume) is in dataset_batch.h.
//
// Line formats, detected per line and checked to agree across the file (or forced by option):
//   text:   {"text": "..."}                                  completion; loss on every token
//   alpaca: {"instruction": "...", "input": "...", "output": "..."}   ("input" optional)
//           the prompt is the Stanford Alpaca template text; loss on the response only
//   chat:   {"messages": [{"role": "system|user|assistant|tool", "content": "..."}, ...]}
//           rendered by the model's chat template; loss on assistant turns only
// train_on_inputs puts the loss on every token instead. Blank lines are ignored.
//
// Special tokens: text and alpaca are encoded with the tokenizer's own special tokens (its
// post-processor's BOS), then EOS is appended when the tokenizer has one, so the model learns to
// stop. Chat text is encoded without them, because the template writes its own (Llama 3's
// template writes <|begin_of_text|>); the tokenizer's BOS is prepended only when the template
// did not write it. See dataset_encode.h for how assistant spans become token spans.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nibble {

class Tokenizer;
class ChatTemplate;

enum class DataFormat { detect, text, alpaca, chat };

const char* data_format_name(DataFormat format);
// "auto"/"detect", "text"/"completion", "alpaca", "chat"/"messages"; throws on anything else.
DataFormat parse_data_format(const std::string& name);

struct DatasetOptions {
  DataFormat format = DataFormat::detect;
  // Examples longer than this keep their first max_seq_length tokens (and are counted).
  int64_t max_seq_length = 2048;
  // Loss on prompts and user turns too, not only on responses.
  bool train_on_inputs = false;
  // Count and skip lines that are bad input instead of throwing on the first one.
  bool skip_bad_lines = false;
  // Append the tokenizer's EOS after a text/alpaca example (when it has one).
  bool add_eos = true;
};

// One tokenized example. loss_mask[j] = 1 means token j is a training target, i.e. the loss of
// predicting tokens[j] from tokens[0..j) counts. loss_mask[0] never counts (nothing precedes it).
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;  // same length as tokens
  int64_t line = 0;                // 1-based line of the source file
};

struct DatasetStats {
  int64_t lines = 0;                     // non-blank lines read
  int64_t examples = 0;                  // examples kept
  int64_t bad_lines = 0;                 // skipped under skip_bad_lines
  std::vector<std::string> bad_line_errors;  // the first few skipped lines' messages
  int64_t truncated_examples = 0;        // examples cut to max_seq_length
  int64_t truncated_tokens = 0;          // tokens cut off in total
  int64_t examples_without_targets = 0;  // dropped: no target token left (e.g. a prompt past
                                         // max_seq_length, or a chat with no assistant turn)
  int64_t tokens = 0;                    // tokens kept, over all examples
  int64_t target_tokens = 0;             // tokens with loss_mask 1
};

class Dataset {
 public:
  // Reads path (JSONL). chat_template may be null when the data has no chat lines.
  static Dataset load(const std::string& path, const Tokenizer& tokenizer,
                      const ChatTemplate* chat_template, const DatasetOptions& options);
  // The same from text in memory; `where` names it in error messages ("where:line: ...").
  static Dataset from_jsonl(const std::string& jsonl, const std::string& where,
                            const Tokenizer& tokenizer, const ChatTemplate* chat_template,
                            const DatasetOptions& options);

  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  const Example& operator[](int64_t i) const { return examples_.at(static_cast<size_t>(i)); }
  const std::vector<Example>& examples() const { return examples_; }
  const DatasetStats& stats() const { return stats_; }
  DataFormat format() const { return format_; }
  int64_t max_seq_length() const { return max_seq_length_; }
  // The id written into padding: the tokenizer's pad, else its EOS, else 0. Never a target.
  int32_t pad_id() const { return pad_id_; }
  const std::string& source() const { return source_; }

  // A held-out split drawn from `seed`: eval gets round(size * eval_ratio) examples (at least
  // one when eval_ratio > 0), train the rest, both in file order. The draw is a Fisher-Yates
  // permutation on the Philox stream kSplitStream (dataset_shuffle.h), so it is the same on
  // every machine and independent of the epoch shuffles.
  struct Split;
  Split split(double eval_ratio, uint64_t seed) const;

 private:
  std::vector<Example> examples_;
  DatasetStats stats_;
  DataFormat format_ = DataFormat::detect;
  int64_t max_seq_length_ = 0;
  int32_t pad_id_ = 0;
  std::string source_;
};

struct Dataset::Split {
  Dataset train;
  Dataset eval;
};

}  // namespace nibble
