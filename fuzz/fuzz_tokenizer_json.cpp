// tokenizer.json: the BPE model, normalizer, pre-tokenizer (with its regexes), post-processor,
// decoder and added tokens. A tokenizer that loads then encodes and decodes a fixed set of texts
// and every id near its vocabulary's edges.
#include <climits>

#include "fuzz_common.h"
#include "nibble/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto tok = nibble::Tokenizer::from_json_string(nibble::fuzz::as_text(data, size), "fuzz/tokenizer.json");
    for (const char* text : {"", " ", "Hello world!", "  the\tcat\n\nsat  ", "ab ab<s>",
                             "\xc3\xa9t\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 123 4567"}) {
      for (bool special : {true, false}) {
        std::vector<int32_t> ids = tok.encode(text, special);
        (void)tok.decode(ids, false);
        (void)tok.decode(ids, true);
      }
    }
    std::vector<int32_t> edges = {-1, 0, 1, INT32_MAX, INT32_MIN};
    for (int32_t id : {static_cast<int32_t>(tok.vocab_size()) - 1, static_cast<int32_t>(tok.vocab_size())})
      edges.push_back(id);
    for (int32_t id : edges) (void)tok.id_to_token(id);
    (void)tok.decode(edges, false);
    (void)tok.token_to_id("<s>");
  });
  return 0;
}
