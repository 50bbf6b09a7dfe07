// The generation loop: the prompt in one forward call (prefill), then one token at a time
// through the KV cache, until an end-of-sequence id, a stop string or max_new_tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nibble/model/llama.h"
#include "nibble/model/sampling.h"

namespace nibble {

class Tokenizer;

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  std::vector<int64_t> eos_ids;          // any of them ends generation (config.json's list)
  std::vector<std::string> stop_strings;  // ends generation where the text contains one
};

enum class StopReason { eos, stop_string, max_new_tokens };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, the EOS id included when it ended generation
  std::string text;             // the decoded text, cut before a stop string (empty without a decoder)
  StopReason reason = StopReason::max_new_tokens;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;  // prompt forward
  double decode_seconds = 0;   // the tokens after the first
};

// Streaming and text: all optional.
struct GenerateCallbacks {
  // ids -> text (the tokenizer's decode); needed for stop strings and on_text.
  std::function<std::string(const std::vector<int32_t>&)> decode;
  // Each piece of text once it is final: held back while it could still be the start of a stop
  // string or ends in an incomplete UTF-8 character.
  std::function<void(std::string_view)> on_text;
  // Each token as it is chosen.
  std::function<void(int32_t)> on_token;
};

// Generates after `prompt` (at least one id). `cache` must be empty or hold exactly the
// positions before `prompt`; it must have room for prompt + max_new_tokens.
GenerateResult generate(LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const GenerateCallbacks& callbacks = {});

// The decode callback for a tokenizer (special tokens skipped, as HF's streamer does).
std::function<std::string(const std::vector<int32_t>&)> tokenizer_decoder(const Tokenizer& tokenizer);

// Throws nibble::Error naming both folders when the tokenizer has ids the model has no
// embedding row for (tokenizer vocab > config.json vocab_size). A smaller tokenizer is fine:
// models pad their vocabulary.
void check_tokenizer_fits(const Tokenizer& tokenizer, const std::string& tokenizer_dir, const LlamaHyper& hyper,
                          const std::string& model_dir);

}  // namespace nibble
