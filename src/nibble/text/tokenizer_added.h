// Added tokens (tokenizer.json "added_tokens"): tokens matched in the text before the
// normalizer and pre-tokenizer run, with HF's lstrip / rstrip / single_word / normalized rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nibble/text/tokenizer_regex.h"

namespace nibble {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A run of text, or one added token, from splitting the input on added tokens.
struct TextSegment {
  std::string text;     // the text (empty when this is a token)
  int32_t token_id;     // -1 for text
  bool at_start;        // text that begins at offset 0 of the original input
};

// Finds added tokens the way HF's AddedVocabulary does: leftmost-longest matching over one
// set of patterns, then the per-token whitespace and word-boundary rules.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher();
  // patterns[i] is what to look for; tokens[i] gives its id and flags.
  void build(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens);
  bool empty() const { return patterns_.empty(); }

  // Splits `text` into text segments and token segments, appending non-empty ones to `out`.
  // `at_start` says whether `text` begins at offset 0 of the original input.
  void split(const std::string& text, bool at_start, std::vector<TextSegment>& out) const;

 private:
  std::vector<std::string> patterns_;
  std::vector<const AddedToken*> tokens_;
  std::vector<std::vector<size_t>> by_first_byte_;  // pattern indices, longest first
  TokenizerRegex word_char_;
};

}  // namespace nibble
