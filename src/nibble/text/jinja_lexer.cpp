#include "nibble/text/jinja_lexer.h"

#include <cctype>

#include "nibble/core/error.h"

namespace nibble::jinja {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {
    // jinja2 turns every \r\n and \r of the template into \n before anything else sees it.
    std::string normalized;
    normalized.reserve(src_.size());
    for (size_t k = 0; k < src_.size(); ++k) {
      if (src_[k] == '\r') {
        normalized += '\n';
        if (k + 1 < src_.size() && src_[k + 1] == '\n') ++k;
      } else {
        normalized += src_[k];
      }
    }
    // Like jinja2 with keep_trailing_newline=False, a single newline ending the template is dropped.
    if (!normalized.empty() && normalized.back() == '\n') normalized.pop_back();
    src_ = std::move(normalized);
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text = src_.substr(pos, (tag == std::string::npos ? src_.size() : tag) - pos);
      if (tag == std::string::npos) {
        emit_text(text, pos);
        break;
      }
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      if (sign == '-') {
        size_t keep = text.size();
        while (keep > 0 && is_space(text[keep - 1])) --keep;
        text.resize(keep);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: a block or comment tag alone on its line takes the indentation with it.
        size_t line_pos = text.rfind('\n');
        line_pos = line_pos == std::string::npos ? 0 : line_pos + 1;
        if (line_pos > 0 || line_starting) {
          bool blank = true;
          for (size_t k = line_pos; k < text.size(); ++k) blank = blank && is_space(text[k]);
          if (blank) text.resize(line_pos);
        }
      }
      emit_text(text, pos);
      size_t inner = tag + 2 + (sign ? 1 : 0);
      pos = kind == '#' ? skip_comment(tag, inner) : lex_tag(tag, inner, kind);
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    tokens_.push_back({TokenType::end_of_input, "", line_of(src_.size()), column_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  int line_of(size_t offset) const {
    size_t lo = 0, hi = line_starts_.size();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (line_starts_[mid] <= offset) lo = mid; else hi = mid;
    }
    return static_cast<int>(lo) + 1;
  }
  int column_of(size_t offset) const { return static_cast<int>(offset - line_starts_[line_of(offset) - 1]) + 1; }

  [[noreturn]] void error_at(size_t offset, const std::string& what) const {
    fail("chat template line {}, column {}: {}", line_of(offset), column_of(offset), what);
  }

  size_t find_tag(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1)) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  void emit_text(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back({TokenType::text, text, line_of(offset), column_of(offset)});
  }

  // After a tag's closing delimiter: `-` strips all following whitespace; otherwise trim_blocks
  // drops one newline after a block or comment tag (never after }}), unless the tag ends with `+`.
  size_t after_tag_end(size_t end, size_t after, char sign, bool is_block) {
    if (sign == '-') {
      while (after < src_.size() && is_space(src_[after])) ++after;
    } else if (is_block && sign != '+' && after < src_.size() && src_[after] == '\n') {
      ++after;
    }
    return after;
  }

  size_t skip_comment(size_t tag, size_t inner) {
    size_t end = src_.find("#}", inner);
    if (end == std::string::npos) error_at(tag, "comment opened with {# is never closed with #}");
    char sign = end > inner && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
    return after_tag_end(end, end + 2, sign, true);
  }

  size_t lex_tag(size_t tag, size_t pos, char kind) {
    bool is_block = kind == '%';
    tokens_.push_back({is_block ? TokenType::block_begin : TokenType::output_begin, "", line_of(tag), column_of(tag)});
    const char* close = is_block ? "%}" : "}}";
    int depth = 0;
    while (true) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
      if (pos >= src_.size())
        error_at(tag, std::string("tag opened with ") + (is_block ? "{%" : "{{") + " is never closed with " + close);
      if (depth == 0) {
        char sign = src_[pos] == '-' || src_[pos] == '+' ? src_[pos] : 0;
        size_t at = pos + (sign ? 1 : 0);
        if (src_.compare(at, 2, close) == 0 && (sign != '+' || is_block)) {
          tokens_.push_back({is_block ? TokenType::block_end : TokenType::output_end, "", line_of(pos), column_of(pos)});
          return after_tag_end(at, at + 2, sign, is_block);
        }
      }
      size_t start = pos;
      char c = src_[pos];
      if (c == '\'' || c == '"') {
        tokens_.push_back({TokenType::string, read_string(pos), line_of(start), column_of(start)});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        bool is_float = false;
        while (pos < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
        if (pos + 1 < src_.size() && src_[pos] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos + 1]))) {
          is_float = true;
          ++pos;
          while (pos < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
        }
        if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
          size_t e = pos + 1;
          if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
          if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
            is_float = true;
            pos = e;
            while (pos < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos]))) ++pos;
          }
        }
        std::string number;
        for (size_t k = start; k < pos; ++k)
          if (src_[k] != '_') number += src_[k];
        tokens_.push_back({is_float ? TokenType::floating : TokenType::integer, number, line_of(start), column_of(start)});
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        while (pos < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
        tokens_.push_back({TokenType::name, src_.substr(start, pos - start), line_of(start), column_of(start)});
      } else {
        static const char* const two[] = {"**", "//", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(pos, 2, t) == 0) op = t;
        if (op.empty()) {
          if (std::string("+-*/%~<>=.,:|()[]{}").find(c) == std::string::npos)
            error_at(pos, std::string("unexpected character '") + c + "' in a tag");
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') ++depth;
          if (c == ')' || c == ']' || c == '}') --depth;
        }
        pos += op.size();
        tokens_.push_back({TokenType::op, op, line_of(start), column_of(start)});
      }
    }
  }

  // A quoted literal with Python's escapes, as jinja2 decodes them.
  std::string read_string(size_t& pos) {
    size_t start = pos;
    char quote = src_[pos++];
    std::string out;
    while (true) {
      if (pos >= src_.size()) error_at(start, "string literal is never closed");
      char c = src_[pos++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos >= src_.size()) error_at(start, "string literal is never closed");
      char e = src_[pos++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
          // Python: exactly 2, 4 or 8 hex digits, and a code point Unicode has; else a SyntaxError.
          int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < digits; ++k, ++pos) {
            int digit = pos < src_.size() ? hex_digit(src_[pos]) : -1;
            if (digit < 0) error_at(pos, "truncated \\" + std::string(1, e) + " escape");
            cp = cp * 16 + static_cast<char32_t>(digit);
          }
          if (cp > 0x10FFFF) error_at(pos, "illegal Unicode character in \\U escape");
          out += utf8_of(cp);
          break;
        }
        default: out += '\\'; out += e;
      }
    }
  }

  static std::string utf8_of(char32_t cp) {
    std::string out;
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); out += static_cast<char>(0x80 | (cp & 0x3f));
    }
    return out;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source) { return Lexer(source).run(); }

}  // namespace nibble::jinja
