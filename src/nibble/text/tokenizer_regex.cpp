#define PCRE2_CODE_UNIT_WIDTH 8
#include "nibble/text/tokenizer_regex.h"

#include <pcre2.h>

#include "nibble/core/error.h"
#include "nibble/text/unicode.h"

namespace nibble {

struct TokenizerRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {
// Match data sized for the largest pattern seen; one per thread keeps find_all const and
// thread-safe without allocating on every call.
struct MatchData {
  pcre2_match_data* data = nullptr;
  ~MatchData() { pcre2_match_data_free(data); }
};
thread_local MatchData tls_match;

pcre2_match_data* match_data() {
  if (!tls_match.data) tls_match.data = pcre2_match_data_create(64, nullptr);
  return tls_match.data;
}
}  // namespace

TokenizerRegex::TokenizerRegex(const std::string& pattern, bool literal, const std::string& where) {
  // PCRE2 refuses UCP together with LITERAL; a literal needs no character classes anyway.
  uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    fail("{}: bad regex \"{}\" at offset {}: {} (expected a PCRE2/Oniguruma-compatible pattern)",
         where, pattern, error_offset, reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation only: when it is unavailable the interpreter gives the same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto owned = std::make_shared<Code>();
  owned->code = code;
  code_ = std::move(owned);
}

std::vector<std::pair<size_t, size_t>> TokenizerRegex::find_all(std::string_view subject) const {
  std::vector<std::pair<size_t, size_t>> matches;
  pcre2_match_data* md = match_data();
  auto sptr = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    int rc = pcre2_match(code_->code, sptr, subject.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail("tokenizer regex: match failed: {}", reinterpret_cast<const char*>(message));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (end == start) {
      // An empty match produces no piece; step over one character and search on.
      if (start >= subject.size()) break;
      pos = start + unicode::utf8_length(static_cast<unsigned char>(subject[start]));
      continue;
    }
    matches.emplace_back(start, end);
    pos = end;
  }
  return matches;
}

std::string TokenizerRegex::replace_all(std::string_view subject, std::string_view content) const {
  std::string out;
  out.reserve(subject.size());
  size_t prev = 0;
  for (auto [start, end] : find_all(subject)) {
    out.append(subject.substr(prev, start - prev));
    out.append(content);
    prev = end;
  }
  out.append(subject.substr(prev));
  return out;
}

}  // namespace nibble
