#include "nibble/model/generate.h"

#include <algorithm>
#include <chrono>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer.h"

namespace nibble {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Turns the growing decoded text into final pieces for on_text, and finds stop strings.
class TextStream {
 public:
  TextStream(const GenerateCallbacks& callbacks, const std::vector<std::string>& stops)
      : callbacks_(callbacks), stops_(stops) {}

  // `text`: everything generated so far, decoded. Returns true when a stop string appeared;
  // the text is then cut before it.
  bool update(std::string text) {
    size_t cut = std::string::npos;
    for (const std::string& stop : stops_) {
      if (stop.empty()) continue;
      size_t at = text.find(stop);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) {
      text_ = text.substr(0, cut);
      emit(text_.size());
      return true;
    }
    text_ = std::move(text);
    emit(safe_end());
    return false;
  }
  void finish() { emit(text_.size()); }
  const std::string& text() const { return text_; }

 private:
  // Where final text ends: before a trailing U+FFFD (a byte-level decoder's mark for a character
  // whose bytes have not all come yet) and before any tail that could begin a stop string.
  size_t safe_end() const {
    static const std::string replacement = "\xEF\xBF\xBD";
    size_t end = text_.size();
    while (end >= 3 && text_.compare(end - 3, 3, replacement) == 0) end -= 3;
    for (const std::string& stop : stops_) {
      for (size_t n = std::min(stop.size() - (stop.empty() ? 0 : 1), text_.size()); n > 0; --n) {
        if (text_.compare(text_.size() - n, n, stop, 0, n) == 0) {
          end = std::min(end, text_.size() - n);
          break;
        }
      }
    }
    return end;
  }
  void emit(size_t end) {
    // A decoder may rewrite earlier text (rarely); what was already emitted stays emitted.
    if (end > emitted_ && callbacks_.on_text) callbacks_.on_text(std::string_view(text_).substr(emitted_, end - emitted_));
    emitted_ = std::max(emitted_, end);
  }

  const GenerateCallbacks& callbacks_;
  const std::vector<std::string>& stops_;
  std::string text_;
  size_t emitted_ = 0;
};

}  // namespace

GenerateResult generate(LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const GenerateCallbacks& callbacks) {
  NIBBLE_CHECK(!prompt.empty(), "generate: the prompt has no tokens; expected at least one");
  NIBBLE_CHECK(options.max_new_tokens >= 0, "generate: max_new_tokens {}; expected >= 0", options.max_new_tokens);
  NIBBLE_CHECK(options.stop_strings.empty() || callbacks.decode,
               "generate: stop strings need a decoder (GenerateCallbacks::decode)");
  const int64_t needed = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  NIBBLE_CHECK(cache.length() + needed <= cache.capacity(),
               "generate: {} prompt tokens + {} new tokens need {} positions, but the KV cache has room for {}",
               prompt.size(), options.max_new_tokens, needed, cache.capacity() - cache.length());
  Sampler sampler(options.sampling);
  TextStream stream(callbacks, options.stop_strings);
  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  if (options.max_new_tokens == 0) return result;

  std::vector<int32_t> history = prompt;  // the repetition penalty looks at the prompt too
  std::vector<int32_t> input = prompt;
  Clock::time_point start = Clock::now();
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    Tensor logits = model.forward(input, cache, /*last_only=*/true).to(Device::cpu);  // F32 [1, V]
    if (step == 0) {
      result.prefill_seconds = seconds_since(start);
      start = Clock::now();
    }
    const int32_t token = sampler.next(logits.data_as<float>(), logits.dim(1), history);
    history.push_back(token);
    result.tokens.push_back(token);
    if (callbacks.on_token) callbacks.on_token(token);
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end()) {
      result.reason = StopReason::eos;
      break;
    }
    if (callbacks.decode && stream.update(callbacks.decode(result.tokens))) {
      result.reason = StopReason::stop_string;
      break;
    }
    input.assign(1, token);
  }
  result.decode_seconds = seconds_since(start);
  stream.finish();
  result.text = stream.text();
  return result;
}

std::function<std::string(const std::vector<int32_t>&)> tokenizer_decoder(const Tokenizer& tokenizer) {
  return [&tokenizer](const std::vector<int32_t>& ids) { return tokenizer.decode(ids, /*skip_special_tokens=*/true); };
}

void check_tokenizer_fits(const Tokenizer& tokenizer, const std::string& tokenizer_dir, const LlamaHyper& hyper,
                          const std::string& model_dir) {
  NIBBLE_CHECK(static_cast<int64_t>(tokenizer.vocab_size()) <= hyper.vocab,
               "{}/tokenizer.json has {} tokens, but {}/config.json has vocab_size {}: expected a tokenizer of at "
               "most vocab_size tokens (this tokenizer belongs to another model)", tokenizer_dir,
               tokenizer.vocab_size(), model_dir, hyper.vocab);
}

}  // namespace nibble
