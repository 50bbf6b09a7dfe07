#include "nibble/io/python_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <vector>

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

// Decodes one UTF-8 sequence starting at text[i]; the text came from nlohmann's parser or our
// own code, so it is valid UTF-8.
uint32_t next_code_point(const std::string& text, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(text[k])); };
  uint32_t b0 = byte(i);
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  size_t count = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : 2;
  NIBBLE_CHECK(i + count <= text.size(), "invalid UTF-8 in a JSON string");
  uint32_t code = b0 & (0x7fu >> count);
  for (size_t k = 1; k < count; ++k) code = (code << 6) | (byte(i + k) & 0x3fu);
  i += count;
  return code;
}

void append_string(std::string& out, const std::string& text) {
  out += '"';
  for (size_t i = 0; i < text.size();) {
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
        if (c < 0x20 || c > 0x7e) {
          if (c >= 0x10000) {  // ensure_ascii writes a UTF-16 surrogate pair
            uint32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
          } else {
            out += fmt::format("\\u{:04x}", c);
          }
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void append_value(std::string& out, const nlohmann::ordered_json& value, int indent, bool sort_keys, int level) {
  auto newline = [&](int depth) {
    out += '\n';
    out.append(static_cast<size_t>(indent * depth), ' ');
  };
  const char* item_separator = indent < 0 ? ", " : ",";
  switch (value.type()) {
    case nlohmann::json::value_t::null: out += "null"; return;
    case nlohmann::json::value_t::boolean: out += value.get<bool>() ? "true" : "false"; return;
    case nlohmann::json::value_t::number_integer: out += std::to_string(value.get<int64_t>()); return;
    case nlohmann::json::value_t::number_unsigned: out += std::to_string(value.get<uint64_t>()); return;
    case nlohmann::json::value_t::number_float: {
      double d = value.get<double>();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += python_float_repr(d);
      return;
    }
    case nlohmann::json::value_t::string: append_string(out, value.get_ref<const std::string&>()); return;
    case nlohmann::json::value_t::array: {
      if (value.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& item : value) {
        if (!first) out += item_separator;
        first = false;
        if (indent >= 0) newline(level + 1);
        append_value(out, item, indent, sort_keys, level + 1);
      }
      if (indent >= 0) newline(level);
      out += ']';
      return;
    }
    case nlohmann::json::value_t::object: {
      if (value.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::string> keys;
      for (auto it = value.begin(); it != value.end(); ++it) keys.push_back(it.key());
      // Python sorts str keys by code point; byte order of UTF-8 is the same order.
      if (sort_keys) std::sort(keys.begin(), keys.end());
      out += '{';
      bool first = true;
      for (const auto& key : keys) {
        if (!first) out += item_separator;
        first = false;
        if (indent >= 0) newline(level + 1);
        append_string(out, key);
        out += ": ";
        append_value(out, value.at(key), indent, sort_keys, level + 1);
      }
      if (indent >= 0) newline(level);
      out += '}';
      return;
    }
    default: fail("python_json_dumps: a JSON value of type {} has no Python equivalent", value.type_name());
  }
}

}  // namespace

std::string python_json_dumps(const nlohmann::ordered_json& value, int indent, bool sort_keys) {
  std::string out;
  append_value(out, value, indent, sort_keys, 0);
  return out;
}

}  // namespace nibble
