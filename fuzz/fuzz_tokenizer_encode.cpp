// Text to encode, with two real tokenizers from tests/golden: byte-level (SmolLM2) and
// SentencePiece-style with byte fallback (Llama 2). Training data and prompts are outside input.
#include "fuzz_common.h"
#include "nibble/text/tokenizer.h"

namespace {

const std::string kTokenizers = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/tokenizers";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nibble::Tokenizer byte_level = nibble::Tokenizer::load(kTokenizers + "/smollm2");
  static const nibble::Tokenizer sentencepiece = nibble::Tokenizer::load(kTokenizers + "/llama2");
  std::string text = nibble::fuzz::as_text(data, size);
  for (const nibble::Tokenizer* tok : {&byte_level, &sentencepiece}) {
    nibble::fuzz::expect_only_nibble_errors([&] {
      std::vector<int32_t> ids = tok->encode(text, true);
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
    });
  }
  return 0;
}
