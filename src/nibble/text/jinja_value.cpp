#include "nibble/text/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "nibble/core/error.h"
#include "nibble/core/python_text.h"

namespace nibble::jinja {

const Value* Dict::find(const std::string& key) const {
  for (const auto& kv : items)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

void Dict::set(const std::string& key, Value value) {
  for (auto& kv : items) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

const Value* CallArgs::get(size_t index, const std::string& name) const {
  for (const auto& kv : keyword)
    if (kv.first == name) return &kv.second;
  return index < positional.size() ? &positional[index] : nullptr;
}

Value Value::make_list(List items) {
  Value v;
  v.kind = Kind::list;
  v.list = std::make_shared<const List>(std::move(items));
  return v;
}

Value Value::make_dict(Dict d) {
  Value v;
  v.kind = Kind::dict;
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::make_namespace(Dict d) {
  Value v = make_dict(std::move(d));
  v.kind = Kind::ns;
  return v;
}

Value Value::function(std::string name, Function f) {
  Value v;
  v.kind = Kind::function;
  v.fn = std::make_shared<const Function>(std::move(f));
  v.fn_name = std::move(name);
  return v;
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::undefined: case Kind::none: return false;
    case Kind::boolean: return b;
    case Kind::integer: return i != 0;
    case Kind::floating: return f != 0;
    case Kind::string: return !s.empty();
    case Kind::list: return !list->empty();
    case Kind::dict: return !dict->items.empty();
    case Kind::function: case Kind::ns: return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (kind) {
    case Kind::undefined: return "undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::function: return "function";
    case Kind::ns: return "Namespace";
  }
  return "?";
}

namespace {

// Data handed to a template (messages, tools) is nested a few levels; deeper is hostile input
// that would overflow the stack of every recursive walk below.
constexpr int kMaxDataDepth = 256;

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxDataDepth) fail("chat template data: nested deeper than {} levels", kMaxDataDepth);
  using t = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case t::null: case t::discarded: return Value::none();
    case t::boolean: return Value::boolean(j.get<bool>());
    case t::number_integer: return Value::integer(j.get<int64_t>());
    case t::number_unsigned: return Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
    case t::number_float: return Value::floating(j.get<double>());
    case t::string: return Value::string(j.get<std::string>());
    case t::array: {
      List items;
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return Value::make_list(std::move(items));
    }
    case t::object: {
      Dict d;
      for (const auto& kv : j.items()) d.items.emplace_back(kv.key(), from_json_at(kv.value(), depth + 1));
      return Value::make_dict(std::move(d));
    }
    case t::binary: fail("chat template data: binary JSON values are not supported");
  }
  return Value::none();
}

}  // namespace

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }


static std::string python_string_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(quote)) { out += '\\'; out += quote; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out + quote;
}

namespace {

// str() and repr() write into one string, checking its size as it grows and the nesting as they
// descend: lists share their items, so a value of a few kilobytes can print as petabytes.
struct TextWriter {
  std::string out;
  size_t max_bytes;
  int max_depth;

  void append(const std::string& text) {
    if (text.size() > max_bytes - std::min(max_bytes, out.size()))
      fail("chat template: a value prints as more than {} bytes (max_output_bytes)", max_bytes);
    out += text;
  }
  void enter(int depth) const {
    if (depth > max_depth) fail("chat template: a value nests deeper than {} levels (max_depth)", max_depth);
  }

  void repr(const Value& v, int depth) {
    enter(depth);
    switch (v.kind) {
      case Kind::string: append(python_string_repr(v.s)); return;
      case Kind::list:
        append("[");
        for (size_t k = 0; k < v.list->size(); ++k) {
          if (k) append(", ");
          repr((*v.list)[k], depth + 1);
        }
        append("]");
        return;
      case Kind::dict: items("{", *v.dict, "}", depth); return;
      default: str(v, depth);
    }
  }

  void str(const Value& v, int depth) {
    enter(depth);
    switch (v.kind) {
      case Kind::undefined: return;
      case Kind::none: append("None"); return;
      case Kind::boolean: append(v.b ? "True" : "False"); return;
      case Kind::integer: append(std::to_string(v.i)); return;
      case Kind::floating: append(python_float_repr(v.f)); return;
      case Kind::string: append(v.s); return;
      case Kind::list: case Kind::dict: repr(v, depth); return;
      case Kind::function: append("<function " + v.fn_name + ">"); return;
      case Kind::ns: items("<Namespace {", *v.dict, "}>", depth); return;
    }
  }

  void items(const char* open, const Dict& d, const char* close, int depth) {
    append(open);
    bool first = true;
    for (const auto& kv : d.items) {
      append((first ? "" : ", ") + python_string_repr(kv.first) + ": ");
      repr(kv.second, depth + 1);
      first = false;
    }
    append(close);
  }
};

}  // namespace

std::string to_repr(const Value& v, size_t max_bytes, int max_depth) {
  TextWriter w{{}, max_bytes, max_depth};
  w.repr(v, 0);
  return std::move(w.out);
}

std::string to_str(const Value& v, size_t max_bytes, int max_depth) {
  if (v.kind == Kind::string && v.s.size() <= max_bytes) return v.s;
  TextWriter w{{}, max_bytes, max_depth};
  w.str(v, 0);
  return std::move(w.out);
}

JsonStyle default_json_style(int indent) {
  JsonStyle style;
  style.indent = indent;
  // json.dumps: with an indent the item separator drops its trailing space.
  style.item_separator = indent >= 0 ? "," : ", ";
  style.key_separator = ": ";
  return style;
}


static void json_dump(const Value& v, const JsonStyle& style, int depth, int line, std::string& out) {
  if (depth > style.max_depth)
    fail("chat template line {}: tojson: the value nests deeper than {} levels (max_depth)", line, style.max_depth);
  if (out.size() > style.max_bytes)
    fail("chat template line {}: tojson: the text is longer than {} bytes (max_output_bytes)", line, style.max_bytes);
  auto newline = [&](int d) {
    if (style.indent < 0) return;
    size_t unit = style.indent_text.empty() ? static_cast<size_t>(style.indent) : style.indent_text.size();
    if (unit != 0 && static_cast<size_t>(d) > (style.max_bytes - std::min(style.max_bytes, out.size())) / unit)
      fail("chat template line {}: tojson: the text is longer than {} bytes (max_output_bytes)", line,
           style.max_bytes);
    out += '\n';
    for (int k = 0; k < d; ++k) out += style.indent_text.empty() ? std::string(style.indent, ' ') : style.indent_text;
  };
  switch (v.kind) {
    case Kind::none: out += "null"; return;
    case Kind::boolean: out += v.b ? "true" : "false"; return;
    case Kind::integer: out += std::to_string(v.i); return;
    case Kind::floating:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
      else out += python_float_repr(v.f);
      return;
    case Kind::string: append_python_json_string(out, v.s, /*ensure_ascii=*/false); return;
    case Kind::list: {
      if (v.list->empty()) { out += "[]"; return; }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += style.item_separator;
        newline(depth + 1);
        json_dump((*v.list)[k], style, depth + 1, line, out);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Kind::dict: {
      if (v.dict->items.empty()) { out += "{}"; return; }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict->items) items.push_back(&kv);
      if (style.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += style.item_separator;
        newline(depth + 1);
        append_python_json_string(out, items[k]->first, /*ensure_ascii=*/false);
        out += style.key_separator;
        json_dump(items[k]->second, style, depth + 1, line, out);
      }
      newline(depth);
      out += '}';
      return;
    }
    default:
      fail("chat template line {}: tojson: Object of type {} is not JSON serializable", line, v.type_name());
  }
}

std::string to_json(const Value& v, const JsonStyle& style, int line) {
  std::string out;
  json_dump(v, style, 0, line, out);
  if (out.size() > style.max_bytes)
    fail("chat template line {}: tojson: the text is longer than {} bytes (max_output_bytes)", line, style.max_bytes);
  return out;
}

namespace {

constexpr int kMaxCompareDepth = 256;
constexpr int64_t kMaxCompareItems = 10000000;

// Lists can share items, so two small values can hold exponentially many items to compare.
bool equals_at(const Value& a, const Value& b, int depth, int64_t& visited) {
  if (depth > kMaxCompareDepth) fail("chat template: comparing values nested deeper than {} levels", kMaxCompareDepth);
  if (++visited > kMaxCompareItems) fail("chat template: comparing more than {} items", kMaxCompareItems);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::undefined: case Kind::none: return true;
    case Kind::string: return a.s == b.s;
    case Kind::list: {
      if (a.list == b.list) return true;
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equals_at((*a.list)[k], (*b.list)[k], depth + 1, visited)) return false;
      return true;
    }
    case Kind::dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& kv : a.dict->items) {
        const Value* other = b.dict->find(kv.first);
        if (!other || !equals_at(kv.second, *other, depth + 1, visited)) return false;
      }
      return true;
    }
    case Kind::ns: return a.dict == b.dict;
    case Kind::function: return a.fn == b.fn;
    default: return false;
  }
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  int64_t visited = 0;
  return equals_at(a, b, 0, visited);
}

namespace {

bool less_than_at(const Value& a, const Value& b, int line, int depth) {
  if (depth > kMaxCompareDepth)
    fail("chat template line {}: comparing values nested deeper than {} levels", line, kMaxCompareDepth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return utf8_decode(a.s) < utf8_decode(b.s);
  if (a.is_list() && b.is_list()) {
    const List& x = *a.list;
    const List& y = *b.list;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!equals(x[k], y[k])) return less_than_at(x[k], y[k], line, depth + 1);
    }
    return x.size() < y.size();
  }
  fail("chat template line {}: '<' not supported between instances of '{}' and '{}'", line, a.type_name(),
       b.type_name());
}

}  // namespace

bool less_than(const Value& a, const Value& b, int line) { return less_than_at(a, b, line, 0); }

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size();) {
    unsigned char c = s[k];
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (extra < 0) {
      out += U'\uFFFD';
      ++k;
      continue;
    }
    char32_t cp = extra == 0 ? c : c & (0x3f >> extra);
    bool ok = true;
    for (int m = 1; m <= extra; ++m) {
      if (k + m >= s.size() || (static_cast<unsigned char>(s[k + m]) >> 6) != 2) { ok = false; break; }
      cp = (cp << 6) | (static_cast<unsigned char>(s[k + m]) & 0x3f);
    }
    if (!ok) { out += U'\uFFFD'; ++k; continue; }
    out += cp;
    k += extra + 1;
  }
  return out;
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  return out;
}

}  // namespace nibble::jinja
