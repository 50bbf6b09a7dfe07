#include "nibble/text/dataset_encode.h"

#include <algorithm>
#include <string_view>

#include "nibble/core/error.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/tokenizer.h"

namespace nibble {

namespace {

using ojson = nlohmann::ordered_json;

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t k = 0;
  while (k < n && a[k] == b[k]) ++k;
  return k;
}

// Where character position c of `text` falls among ids = encode(text, false): `first` is the
// number of whole-text tokens that the prefix text[0, c) shares; `straddles` says a token of the
// whole text begins before c and ends after it.
struct Boundary {
  size_t first = 0;
  bool straddles = false;
};

Boundary token_boundary(const Tokenizer& tokenizer, const std::string& text, size_t c,
                        const std::vector<int32_t>& ids) {
  if (c == 0) return {0, false};
  if (c >= text.size()) return {ids.size(), false};
  const std::vector<int32_t> prefix = tokenizer.encode(std::string_view(text).substr(0, c), false);
  const size_t k = common_prefix(prefix, ids);
  return {k, prefix.size() > k && k < ids.size()};
}

// Marks the tokens holding characters [s, e) of text as targets; ids are text's plain tokens,
// which start at mask[offset].
void mark_span(const Tokenizer& tokenizer, const std::string& text, size_t s, size_t e,
               const std::vector<int32_t>& ids, size_t offset, std::vector<uint8_t>& mask) {
  if (e <= s) return;
  const size_t begin = token_boundary(tokenizer, text, s, ids).first;
  const Boundary end_at = token_boundary(tokenizer, text, e, ids);
  const size_t end = std::min(ids.size(), end_at.first + (end_at.straddles ? 1 : 0));
  for (size_t k = begin; k < end; ++k) mask[offset + k] = 1;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

void append_eos(const EncodeContext& context, Example& example) {
  const auto eos = context.tokenizer->eos_id();
  if (!context.add_eos || !eos) return;
  if (!example.tokens.empty() && example.tokens.back() == *eos) return;  // add_eos_token did it
  example.tokens.push_back(*eos);
  example.loss_mask.push_back(1);
}

// Text with its response starting at character response_begin (0: all of it is response).
Example encode_plain(const std::string& text, size_t response_begin,
                     const EncodeContext& context) {
  const Tokenizer& tokenizer = *context.tokenizer;
  const std::vector<int32_t> ids = tokenizer.encode(text, false);
  Example example;
  example.tokens = context.wrap.prefix;
  example.tokens.insert(example.tokens.end(), ids.begin(), ids.end());
  example.tokens.insert(example.tokens.end(), context.wrap.suffix.begin(),
                        context.wrap.suffix.end());
  example.loss_mask.assign(example.tokens.size(), 0);
  const size_t offset = context.wrap.prefix.size();
  const size_t first = context.train_on_inputs
                           ? 0
                           : token_boundary(tokenizer, text, response_begin, ids).first;
  std::fill(example.loss_mask.begin() + static_cast<std::ptrdiff_t>(offset + first),
            example.loss_mask.end(), 1);
  append_eos(context, example);
  return example;
}

ojson first_messages(const ojson& messages, size_t n) {
  ojson out = ojson::array();
  for (size_t i = 0; i < n; ++i) out.push_back(messages[i]);
  return out;
}

std::string render(const ChatTemplate& chat, const ojson& messages, bool generation_prompt,
                   const std::string& where, int64_t line_no) {
  try {
    return chat.render(messages, generation_prompt);
  } catch (const Error& e) {
    fail("{}:{}: the chat template failed on this conversation: {}", where, line_no, e.what());
  }
}

// The character length of a render of the first n messages, which must be a prefix of `full`.
size_t prefix_length(const ChatTemplate& chat, const ojson& messages, size_t n,
                     bool generation_prompt, const std::string& full, const std::string& where,
                     int64_t line_no) {
  const std::string part = render(chat, first_messages(messages, n), generation_prompt, where,
                                  line_no);
  if (part.size() > full.size() || full.compare(0, part.size(), part) != 0)
    fail("{}:{}: the chat template renders messages[0..{}){} as text that is not a prefix of the "
         "whole conversation, so assistant turn {} cannot be located; expected a template that "
         "renders earlier turns the same whatever follows (or set train_on_inputs)",
         where, line_no, n, generation_prompt ? " with the generation prompt" : "", n);
  return part.size();
}

Example encode_chat(const DataRecord& record, const EncodeContext& context,
                    const std::string& where, int64_t line_no) {
  if (context.chat_template == nullptr)
    fail("{}:{}: a chat line, but no chat template was given; expected the model's "
         "chat_template.jinja or tokenizer_config.json \"chat_template\"",
         where, line_no);
  const ChatTemplate& chat = *context.chat_template;
  const Tokenizer& tokenizer = *context.tokenizer;
  const ojson& messages = record.messages;
  const std::string full = render(chat, messages, false, where, line_no);
  const std::vector<int32_t> ids = tokenizer.encode(full, false);

  // The template writes its own special tokens; add the tokenizer's BOS only if it did not.
  const std::vector<int32_t>& bos = context.wrap.prefix;
  const bool has_bos = ids.size() >= bos.size() && std::equal(bos.begin(), bos.end(), ids.begin());
  Example example;
  if (!has_bos) example.tokens = bos;
  const size_t offset = example.tokens.size();
  example.tokens.insert(example.tokens.end(), ids.begin(), ids.end());
  example.loss_mask.assign(example.tokens.size(), context.train_on_inputs ? 1 : 0);
  if (context.train_on_inputs) return example;

  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i]["role"] != "assistant") continue;
    const size_t s = prefix_length(chat, messages, i, true, full, where, line_no);
    size_t e = prefix_length(chat, messages, i + 1, false, full, where, line_no);
    while (e > s && is_space(full[e - 1])) --e;
    mark_span(tokenizer, full, s, e, ids, offset, example.loss_mask);
  }
  return example;
}

}  // namespace

SpecialWrap special_wrap_of(const Tokenizer& tokenizer) {
  // Compare one plain word with and without special tokens: what surrounds it is the wrap.
  const std::string probe = "a";
  const std::vector<int32_t> plain = tokenizer.encode(probe, false);
  const std::vector<int32_t> wrapped = tokenizer.encode(probe, true);
  SpecialWrap wrap;
  auto at = std::search(wrapped.begin(), wrapped.end(), plain.begin(), plain.end());
  if (plain.empty() || at == wrapped.end()) return wrap;
  wrap.prefix.assign(wrapped.begin(), at);
  wrap.suffix.assign(at + static_cast<std::ptrdiff_t>(plain.size()), wrapped.end());
  return wrap;
}

Example encode_record(const DataRecord& record, const EncodeContext& context,
                      const std::string& where, int64_t line_no) {
  Example example;
  switch (record.format) {
    case DataFormat::text:
      example = encode_plain(record.text, 0, context);
      break;
    case DataFormat::alpaca: {
      const std::string prompt = alpaca_prompt(record.instruction, record.input);
      example = encode_plain(prompt + record.output, prompt.size(), context);
      break;
    }
    case DataFormat::chat:
      example = encode_chat(record, context, where, line_no);
      break;
    case DataFormat::detect:
      NIBBLE_ASSERT(false);
  }
  example.line = line_no;
  return example;
}

}  // namespace nibble
