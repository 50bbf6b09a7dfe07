// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the regexes tokenizer.json
// files carry. HF runs them on Oniguruma; the constructs these files use (\p{L}, \p{N},
// scoped (?i:...), negative lookahead) mean the same in PCRE2 with UCP.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nibble {

class TokenizerRegex {
 public:
  // literal: match `pattern` as plain text (Split/Replace with a "String" pattern).
  // Throws nibble::Error naming `where` when the pattern does not compile.
  TokenizerRegex(const std::string& pattern, bool literal, const std::string& where);

  // Byte ranges [start, end) of successive non-overlapping, non-empty matches. The subject
  // must be valid UTF-8 (callers check the input once).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view subject) const;

  // Every match replaced with `content`.
  std::string replace_all(std::string_view subject, std::string_view content) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

}  // namespace nibble
