// A checked record -> token ids and a loss mask.
//
// How response spans become token spans. The text is tokenized once, whole, so the tokens are
// exactly those of the rendered text. A response is first located as a span of characters
// [s, e); the first target token is then the length of the longest common prefix of
// encode(text[0, s)) and encode(text): the tokens the prompt alone has, which is what the model
// sees at inference. For chat data, s is the length of render(messages[0, i),
// add_generation_prompt = true) and e the length of render(messages[0, i], false), less trailing
// whitespace (so the "\n" a template writes after <|im_end|> is not a target; the end-of-turn
// token is, so the model learns to stop). A token that straddles s or e holds response
// characters, so it counts as a target.
//
// Limits: both renders must be prefixes of the whole conversation's render; a template that
// rewrites earlier turns when later ones follow (one that drops past reasoning, say) cannot be
// split this way, and the line is rejected with a message saying so. When a merge across a
// boundary changes more than the one straddling token (rare; BPE merges are local), a token
// near the boundary may be counted on the wrong side.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nibble/text/dataset.h"
#include "nibble/text/dataset_format.h"

namespace nibble {

// What the tokenizer's post-processor puts around a text ([BOS] before, [EOS] after, ...).
struct SpecialWrap {
  std::vector<int32_t> prefix, suffix;
};
SpecialWrap special_wrap_of(const Tokenizer& tokenizer);

struct EncodeContext {
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;  // required for chat records
  SpecialWrap wrap;
  bool train_on_inputs = false;
  bool add_eos = true;
};

// The whole example, not yet truncated. Throws "where:line: ..." when a chat template fails.
Example encode_record(const DataRecord& record, const EncodeContext& context,
                      const std::string& where, int64_t line_no);

}  // namespace nibble
