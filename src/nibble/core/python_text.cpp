#include "nibble/core/python_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include <fmt/format.h>

#include "nibble/core/error.h"

namespace nibble {

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";

  // Shortest round-trip digits in scientific form: "-5.0937652587890625e-02".
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  NIBBLE_ASSERT(result.ec == std::errc());
  std::string scientific(buffer, result.ptr);
  std::string sign;
  if (scientific[0] == '-') {
    sign = "-";
    scientific.erase(0, 1);
  }
  size_t e = scientific.find('e');
  NIBBLE_ASSERT(e != std::string::npos);
  int exponent = std::stoi(scientific.substr(e + 1));
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (scientific[i] != '.') digits += scientific[i];

  // Python's float_repr_style 'short' switches to exponent notation when the decimal point
  // would sit more than 16 digits right of the first digit or 4+ zeros left of it.
  int point = exponent + 1;  // value = 0.DIGITS x 10^point
  if (point <= -4 || point > 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa += "." + digits.substr(1);
    return fmt::format("{}{}e{}{:02d}", sign, mantissa, exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  int length = static_cast<int>(digits.size());
  if (point <= 0) return sign + "0." + std::string(static_cast<size_t>(-point), '0') + digits;
  if (point >= length) return sign + digits + std::string(static_cast<size_t>(point - length), '0') + ".0";
  return sign + digits.substr(0, static_cast<size_t>(point)) + "." + digits.substr(static_cast<size_t>(point));
}

namespace {

// Decodes one UTF-8 sequence starting at text[i] and advances i past it.
uint32_t next_code_point(std::string_view text, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(text[k])); };
  uint32_t b0 = byte(i);
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  size_t count = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : 2;
  NIBBLE_CHECK(b0 >= 0xc0 && i + count <= text.size(), "invalid UTF-8 in a JSON string at byte {}", i);
  uint32_t code = b0 & (0x7fu >> count);
  for (size_t k = 1; k < count; ++k) code = (code << 6) | (byte(i + k) & 0x3fu);
  i += count;
  return code;
}

}  // namespace

void append_python_json_string(std::string& out, std::string_view text, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    uint32_t c = next_code_point(text, i);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7e)) {
          if (c >= 0x10000) {  // a UTF-16 surrogate pair
            uint32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
          } else {
            out += fmt::format("\\u{:04x}", c);
          }
        } else {
          out.append(text.substr(start, i - start));
        }
    }
  }
  out += '"';
}

}  // namespace nibble
