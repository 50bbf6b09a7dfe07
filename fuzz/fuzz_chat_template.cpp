// A chat template's Jinja source, parsed and rendered for a fixed small conversation.
#include "fuzz_common.h"
#include "fuzz_conversation.h"
#include "nibble/text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto chat = nibble::ChatTemplate::from_string(nibble::fuzz::as_text(data, size), {"<s>", "</s>", "<unk>", ""});
    nibble::fuzz::render_conversation(chat);
  });
  return 0;
}
