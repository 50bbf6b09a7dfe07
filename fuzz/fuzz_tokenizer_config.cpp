// tokenizer_config.json: special tokens and add_bos/add_eos for the tokenizer, and the chat
// template with its special tokens, rendered for a fixed small conversation.
#include "fuzz_common.h"
#include "fuzz_conversation.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/tokenizer.h"
#include "tiny_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string tokenizer_json = nibble::fuzz::tiny_tokenizer_json(/*with_pre_tokenizer=*/false);
  std::string text = nibble::fuzz::as_text(data, size);
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto tok = nibble::Tokenizer::from_json_string(tokenizer_json, "tiny/tokenizer.json");
    tok.apply_config(text, "fuzz/tokenizer_config.json");
    (void)tok.encode("<s>hello the world</s>", true);
  });
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto chat = nibble::ChatTemplate::from_tokenizer_config(text, "fuzz/tokenizer_config.json");
    nibble::fuzz::render_conversation(chat);
  });
  return 0;
}
