// A JSONL training file (text, alpaca or chat lines), tokenized with a tiny byte-level tokenizer
// and a ChatML template, then packed into batches. Run twice: strict (the first bad line is the
// error), and skipping bad lines with short sequences, loss on inputs and padded batches.
#include "fuzz_common.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"
#include "nibble/text/tokenizer.h"
#include "tiny_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nibble::Tokenizer tok =
      nibble::Tokenizer::from_json_string(nibble::fuzz::tiny_tokenizer_json(), "tiny/tokenizer.json");
  static nibble::ChatTemplate chat = [] {
    auto c = nibble::ChatTemplate::from_string(nibble::fuzz::tiny_chat_template(), {"<s>", "</s>", "", ""});
    c.limits().max_loop_iterations = 10000;
    c.limits().max_work = 1 << 26;
    return c;
  }();
  std::string jsonl = nibble::fuzz::as_text(data, size);

  nibble::DatasetOptions strict;
  strict.max_seq_length = 64;
  nibble::DatasetOptions lenient;
  lenient.max_seq_length = 8;
  lenient.skip_bad_lines = true;
  lenient.train_on_inputs = true;
  lenient.add_eos = false;
  nibble::BatchOptions packed;
  packed.batch_size = 2;
  nibble::BatchOptions padded;
  padded.batch_size = 3;
  padded.packing = false;
  padded.pad_to_longest = true;
  padded.epochs = 2;

  for (const auto& run : {std::pair{strict, packed}, std::pair{lenient, padded}}) {
    const auto& [options, batching] = run;
    nibble::fuzz::expect_only_nibble_errors([&, &options = options, &batching = batching] {
      auto dataset = nibble::Dataset::from_jsonl(jsonl, "fuzz/train.jsonl", tok, &chat, options);
      nibble::BatchIterator batches(dataset, batching);
      nibble::Batch batch;
      while (batches.next(batch)) {
      }
    });
  }
  return 0;
}
