#include "nibble/io/python_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <vector>

#include "nibble/core/error.h"
#include "nibble/core/python_text.h"

namespace nibble {

namespace {

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
    case nlohmann::json::value_t::string: append_python_json_string(out, value.get_ref<const std::string&>(), /*ensure_ascii=*/true); return;
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
        append_python_json_string(out, key, /*ensure_ascii=*/true);
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
