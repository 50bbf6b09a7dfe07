#include "nibble/text/tokenizer_added.h"

#include <algorithm>

#include "nibble/text/unicode.h"

namespace nibble {

AddedTokenMatcher::AddedTokenMatcher() : word_char_(R"(^\w$)", false, "added tokens") {}

void AddedTokenMatcher::build(std::vector<std::string> patterns,
                              std::vector<const AddedToken*> tokens) {
  patterns_ = std::move(patterns);
  tokens_ = std::move(tokens);
  by_first_byte_.assign(256, {});
  for (size_t i = 0; i < patterns_.size(); ++i) {
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) {
      return patterns_[a].size() > patterns_[b].size();
    });
  }
}

namespace {
// The last / first code point of a string, as UTF-8.
std::string last_char(std::string_view s) {
  size_t pos = s.size();
  while (pos > 0 && (static_cast<unsigned char>(s[pos - 1]) & 0xC0) == 0x80) --pos;
  return std::string(s.substr(pos > 0 ? pos - 1 : 0));
}
std::string first_char(std::string_view s) {
  return std::string(s.substr(0, unicode::utf8_length(static_cast<unsigned char>(s[0]))));
}
}  // namespace

void AddedTokenMatcher::split(const std::string& text, bool at_start,
                              std::vector<TextSegment>& out) const {
  auto is_word = [&](const std::string& ch) { return !word_char_.find_all(ch).empty(); };
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size() && !patterns_.empty()) {
    // Leftmost-longest: the first position where any pattern matches, its longest pattern.
    size_t match = SIZE_MAX;
    for (size_t idx : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, patterns_[idx].size(), patterns_[idx]) == 0) {
        match = idx;
        break;
      }
    }
    if (match == SIZE_MAX) {
      ++pos;
      continue;
    }
    const AddedToken& token = *tokens_[match];
    size_t start = pos, stop = pos + patterns_[match].size();
    pos = stop;  // the search resumes after this match even when it is discarded below
    if (token.single_word) {
      bool start_space = start == 0 || !is_word(last_char(std::string_view(text).substr(0, start)));
      bool stop_space = stop == text.size() || !is_word(first_char(std::string_view(text).substr(stop)));
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) {
      // Swallow whitespace to the left, but never into the previous match.
      size_t new_start = start;
      while (new_start > 0) {
        size_t p = new_start - 1;
        while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
        size_t q = p;
        if (!unicode::is_whitespace(unicode::next_code_point(text, q))) break;
        new_start = p;
      }
      start = std::max(new_start, start_offset);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t q = stop;
        if (!unicode::is_whitespace(unicode::next_code_point(text, q))) break;
        stop = q;
      }
    }
    if (start_offset < start)
      out.push_back({text.substr(start_offset, start - start_offset), -1, at_start && start_offset == 0});
    out.push_back({std::string(), token.id, false});
    start_offset = stop;
  }
  if (start_offset < text.size())
    out.push_back({text.substr(start_offset), -1, at_start && start_offset == 0});
}

}  // namespace nibble
