#include "nibble/text/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <unordered_set>

#include "nibble/core/error.h"
#include "nibble/core/python_text.h"

namespace nibble::jinja {
namespace {

size_t max_string_bytes(const CallArgs& args) {
  return args.limits ? args.limits->max_output_bytes : std::numeric_limits<size_t>::max();
}

// Checked before a string of `bytes` is built, so that "x"|center(10**12) fails instead of
// allocating a terabyte.
void check_string_size(size_t bytes, const CallArgs& args, const char* what) {
  if (bytes > max_string_bytes(args))
    fail("chat template line {}: {} would build a string of more than {} bytes (max_output_bytes)", args.line, what,
         max_string_bytes(args));
}

// Sums and products of sizes computed from untrusted widths and counts: they saturate at the
// largest size_t instead of wrapping around to a small one.
constexpr size_t kMaxSize = std::numeric_limits<size_t>::max();
size_t add_sizes(size_t a, size_t b) { return a > kMaxSize - b ? kMaxSize : a + b; }
size_t mul_sizes(size_t a, size_t b) { return b != 0 && a > kMaxSize / b ? kMaxSize : a * b; }

std::string text_of(const Value& v, const CallArgs& args) {
  return to_str(v, max_string_bytes(args), args.limits ? args.limits->max_depth : 256);
}

bool is_py_space(char32_t c) { return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x1f || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000; }

// Python's str.strip family; with `chars` given, strips those code points instead of whitespace.
std::string strip(const std::string& s, bool left, bool right, const Value* chars) {
  std::u32string text = utf8_decode(s);
  std::u32string set = chars && chars->is_string() ? utf8_decode(chars->s) : std::u32string();
  auto strippable = [&](char32_t c) { return chars && chars->is_string() ? set.find(c) != std::u32string::npos : is_py_space(c); };
  size_t lo = 0, hi = text.size();
  if (left) while (lo < hi && strippable(text[lo])) ++lo;
  if (right) while (hi > lo && strippable(text[hi - 1])) --hi;
  return utf8_encode(text.substr(lo, hi - lo));
}

// Case mapping is ASCII-only: chat templates apply it to role names and keywords.
std::string lower(std::string s) { for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c))); return s; }
std::string upper(std::string s) { for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c))); return s; }
std::string capitalize(const std::string& s) { std::string out = lower(s); if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0]))); return out; }
std::string title(const std::string& s) {
  std::string out = s;
  bool previous_cased = false;
  for (auto& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    bool cased = std::isalpha(u) != 0;
    c = static_cast<char>(cased ? (previous_cased ? std::tolower(u) : std::toupper(u)) : u);
    previous_cased = cased;
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count,
                        const CallArgs& args) {
  std::string out;
  if (from.empty()) {
    // Python puts `to` before every character and at the end: up to (characters + 1) copies.
    size_t copies = add_sizes(utf8_decode(s).size(), 1);
    if (count >= 0) copies = std::min(copies, static_cast<size_t>(count));
    check_string_size(add_sizes(s.size(), mul_sizes(copies, to.size())), args, "replace()");
    std::u32string chars = utf8_decode(s);
    int64_t done = 0;
    for (char32_t c : chars) {
      if (count < 0 || done < count) { out += to; ++done; }
      out += utf8_encode(std::u32string(1, c));
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    check_string_size(add_sizes(out.size(), add_sizes(at - pos, to.size())), args, "replace()");
    out += s.substr(pos, at - pos) + to;
    pos = at + from.size();
    ++done;
  }
  return out + s.substr(pos);
}

const Value& need_arg(const CallArgs& args, size_t index, const std::string& name, const std::string& what) {
  const Value* v = args.get(index, name);
  if (!v) fail("chat template line {}: {} needs the argument '{}'", args.line, what, name);
  return *v;
}

const std::string& need_string(const Value& v, int line, const std::string& what) {
  if (!v.is_string()) fail("chat template line {}: {} expects a string, got {}", line, what, v.type_name());
  return v.s;
}

int64_t length_of(const Value& v, int line) {
  switch (v.kind) {
    case Kind::string: return static_cast<int64_t>(utf8_decode(v.s).size());
    case Kind::list: return static_cast<int64_t>(v.list->size());
    case Kind::dict: case Kind::ns: return static_cast<int64_t>(v.dict->items.size());
    case Kind::undefined: return 0;
    default: fail("chat template line {}: object of type '{}' has no len()", line, v.type_name());
  }
}

// Looks up a dotted attribute path ("a.b") the way map(attribute=) and selectattr do.
Value attribute_path(const Value& v, const std::string& path) {
  Value current = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (current.is_dict() || current.kind == Kind::ns) {
      const Value* next = current.dict->find(part);
      current = next ? *next : Value::undefined("no attribute '" + part + "'");
    } else if (current.is_list() && !part.empty() && std::isdigit(static_cast<unsigned char>(part[0]))) {
      size_t index = std::strtoul(part.c_str(), nullptr, 10);
      current = index < current.list->size() ? (*current.list)[index] : Value::undefined("no element " + part);
    } else {
      return Value::undefined("no attribute '" + part + "'");
    }
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return current;
}

CallArgs shifted(const CallArgs& args, size_t from) {
  CallArgs out;
  out.line = args.line;
  out.limits = args.limits;
  for (size_t k = from; k < args.positional.size(); ++k) out.positional.push_back(args.positional[k]);
  return out;
}

Value select_like(const Value& input, const CallArgs& args, bool by_attribute, bool keep) {
  List out;
  size_t test_at = by_attribute ? 1 : 0;
  std::string attribute = by_attribute ? need_string(need_arg(args, 0, "attribute", "selectattr"), args.line, "selectattr") : "";
  for (const auto& item : iterate(input, args.line, args.limits)) {
    Value subject = by_attribute ? attribute_path(item, attribute) : item;
    bool result;
    if (args.positional.size() > test_at) {
      const std::string& test = need_string(args.positional[test_at], args.line, "select test name");
      result = apply_test(test, subject, shifted(args, test_at + 1));
    } else {
      result = subject.truthy();
    }
    if (result == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value sort_values(const Value& input, const CallArgs& args) {
  List items = iterate(input, args.line, args.limits);
  const Value* reverse = args.get(0, "reverse");
  const Value* case_sensitive = args.get(1, "case_sensitive");
  const Value* attribute = args.get(2, "attribute");
  auto key = [&](const Value& v) {
    Value k = attribute && attribute->is_string() ? attribute_path(v, attribute->s) : v;
    if (k.is_string() && !(case_sensitive && case_sensitive->truthy())) k = Value::string(lower(k.s));
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    return less_than(key(a), key(b), args.line);
  });
  if (reverse && reverse->truthy()) std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}

std::string indent_text(const std::string& s, const CallArgs& args) {
  const Value* width = args.get(0, "width");
  const Value* first = args.get(1, "first");
  const Value* blank = args.get(2, "blank");
  // As Python's " " * width: a negative width is no indent.
  size_t pad_size = width && !width->is_string() ? static_cast<size_t>(std::max<int64_t>(0, width->as_int())) : 4;
  size_t lines_count = static_cast<size_t>(std::count(s.begin(), s.end(), '\n')) + 1;
  if (width && width->is_string()) pad_size = width->s.size();
  check_string_size(add_sizes(s.size(), mul_sizes(pad_size, lines_count)), args, "indent");
  std::string pad = width && width->is_string() ? width->s : std::string(pad_size, ' ');
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t nl = s.find('\n', pos);
    lines.push_back(s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    bool indent = k == 0 ? (first && first->truthy()) : (!lines[k].empty() || (blank && blank->truthy()));
    if (k) out += '\n';
    out += (indent ? pad : "") + lines[k];
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Python's int() of a float, as jinja2's int filter calls it: NaN is a ValueError, which the
// filter turns into its default; infinity is an OverflowError; other values beyond 64 bits would be
// Python big integers, which nibble's values cannot hold, so they are an error too.
Value float_to_int(double d, const Value& dflt, int line) {
  if (std::isnan(d)) return dflt;
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    fail("chat template line {}: int({}) does not fit in a 64-bit integer", line, python_float_repr(d));
  return Value::integer(static_cast<int64_t>(d));
}

Value to_int(const Value& v, const CallArgs& args) {
  const Value* fallback = args.get(0, "default");
  Value dflt = fallback ? *fallback : Value::integer(0);
  if (v.is_integral()) return Value::integer(v.as_int());
  if (v.kind == Kind::floating) return float_to_int(v.f, dflt, args.line);
  if (v.is_string()) {
    std::string t = strip(v.s, true, true, nullptr);
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(t.c_str(), &end, 10);
    if (!t.empty() && *end == 0) {
      if (errno == ERANGE) fail("chat template line {}: int('{}') does not fit in a 64-bit integer", args.line, t);
      return Value::integer(i);
    }
    double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && *end == 0) return float_to_int(d, dflt, args.line);
  }
  return dflt;
}

Value to_float(const Value& v, const CallArgs& args) {
  const Value* fallback = args.get(0, "default");
  if (v.is_number()) return Value::floating(v.as_double());
  if (v.is_string()) {
    std::string t = strip(v.s, true, true, nullptr);
    char* end = nullptr;
    double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && *end == 0) return Value::floating(d);
  }
  return fallback ? *fallback : Value::floating(0.0);
}

// Python's str.format with {} and {0} and {name}; no format specs.
std::string python_format(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '{' && k + 1 < fmt.size() && fmt[k + 1] == '{') { out += '{'; ++k; continue; }
    if (c == '}' && k + 1 < fmt.size() && fmt[k + 1] == '}') { out += '}'; ++k; continue; }
    if (c != '{') { out += c; continue; }
    size_t close = fmt.find('}', k);
    if (close == std::string::npos) fail("chat template line {}: format(): unmatched '{{'", args.line);
    std::string field = fmt.substr(k + 1, close - k - 1);
    if (field.find(':') != std::string::npos || field.find('!') != std::string::npos)
      fail("chat template line {}: format(): format specs are not supported ('{}')", args.line, field);
    const Value* v = nullptr;
    if (field.empty()) v = args.get(auto_index++, "");
    else if (std::isdigit(static_cast<unsigned char>(field[0]))) v = args.get(std::strtoul(field.c_str(), nullptr, 10), "");
    else v = args.get(static_cast<size_t>(-1), field);
    if (!v) fail("chat template line {}: format(): no argument for '{{{}}}'", args.line, field);
    out += text_of(*v, args);
    check_string_size(out.size(), args, "format()");
    k = close;
  }
  return out;
}

Value string_method(const std::string& s, const std::string& name, const CallArgs& args) {
  int line = args.line;
  if (name == "strip") return Value::string(strip(s, true, true, args.get(0, "chars")));
  if (name == "lstrip") return Value::string(strip(s, true, false, args.get(0, "chars")));
  if (name == "rstrip") return Value::string(strip(s, false, true, args.get(0, "chars")));
  if (name == "upper") return Value::string(upper(s));
  if (name == "lower") return Value::string(lower(s));
  if (name == "title") return Value::string(title(s));
  if (name == "capitalize") return Value::string(capitalize(s));
  if (name == "startswith" || name == "endswith") {
    const Value& arg = need_arg(args, 0, "prefix", name);
    List options = arg.is_list() ? *arg.list : List{arg};
    for (const auto& o : options) {
      const std::string& p = need_string(o, line, name);
      bool hit = name == "startswith" ? s.compare(0, p.size(), p) == 0
                                      : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "replace") {
    const Value* count = args.get(2, "count");
    return Value::string(replace_all(s, need_string(need_arg(args, 0, "old", name), line, name),
                                     need_string(need_arg(args, 1, "new", name), line, name),
                                     count ? count->as_int() : -1, args));
  }
  if (name == "split") {
    const Value* sep = args.get(0, "sep");
    const Value* maxsplit = args.get(1, "maxsplit");
    int64_t limit = maxsplit ? maxsplit->as_int() : -1;
    List parts;
    if (!sep || sep->is_none()) {
      std::u32string text = utf8_decode(s);
      size_t k = 0;
      while (k < text.size()) {
        while (k < text.size() && is_py_space(text[k])) ++k;
        if (k >= text.size()) break;
        if (limit >= 0 && static_cast<int64_t>(parts.size()) == limit) {
          std::u32string rest = text.substr(k);
          while (!rest.empty() && is_py_space(rest.back())) rest.pop_back();
          parts.push_back(Value::string(utf8_encode(rest)));
          break;
        }
        size_t start = k;
        while (k < text.size() && !is_py_space(text[k])) ++k;
        parts.push_back(Value::string(utf8_encode(text.substr(start, k - start))));
      }
      return Value::make_list(std::move(parts));
    }
    const std::string& d = need_string(*sep, line, "split");
    if (d.empty()) fail("chat template line {}: split(): empty separator", line);
    size_t pos = 0;
    while (limit < 0 || static_cast<int64_t>(parts.size()) < limit) {
      size_t at = s.find(d, pos);
      if (at == std::string::npos) break;
      parts.push_back(Value::string(s.substr(pos, at - pos)));
      pos = at + d.size();
    }
    parts.push_back(Value::string(s.substr(pos)));
    return Value::make_list(std::move(parts));
  }
  if (name == "find" || name == "count") {
    const std::string& needle = need_string(need_arg(args, 0, "sub", name), line, name);
    if (name == "find") {
      size_t at = s.find(needle);
      if (at == std::string::npos) return Value::integer(-1);
      return Value::integer(static_cast<int64_t>(utf8_decode(s.substr(0, at)).size()));
    }
    if (needle.empty()) return Value::integer(static_cast<int64_t>(utf8_decode(s).size()) + 1);
    int64_t n = 0;
    for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + needle.size())) ++n;
    return Value::integer(n);
  }
  if (name == "format") return Value::string(python_format(s, args));
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const auto& v : iterate(need_arg(args, 0, "iterable", name), line, args.limits)) {
      out += (first ? "" : s) + need_string(v, line, "join");
      check_string_size(out.size(), args, "join()");
      first = false;
    }
    return Value::string(out);
  }
  fail("chat template line {}: str has no method '{}'", line, name);
}

Value dict_method(const Value& d, const std::string& name, const CallArgs& args) {
  if (name == "items") {
    List items;
    for (const auto& kv : d.dict->items) items.push_back(Value::make_list({Value::string(kv.first), kv.second}));
    return Value::make_list(std::move(items));
  }
  if (name == "keys") {
    List items;
    for (const auto& kv : d.dict->items) items.push_back(Value::string(kv.first));
    return Value::make_list(std::move(items));
  }
  if (name == "values") {
    List items;
    for (const auto& kv : d.dict->items) items.push_back(kv.second);
    return Value::make_list(std::move(items));
  }
  if (name == "get") {
    const Value& key = need_arg(args, 0, "key", "get");
    const Value* dflt = args.get(1, "default");
    if (key.is_string())
      if (const Value* v = d.dict->find(key.s)) return *v;
    return dflt ? *dflt : Value::none();
  }
  fail("chat template line {}: dict has no method '{}'", args.line, name);
}

}  // namespace

List iterate(const Value& v, int line, const Limits* limits) {
  switch (v.kind) {
    case Kind::undefined: return {};
    case Kind::list: return *v.list;
    case Kind::dict: {
      List keys;
      for (const auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Kind::string: {
      std::u32string text = utf8_decode(v.s);
      if (limits && text.size() > static_cast<uint64_t>(limits->max_loop_iterations))
        fail("chat template line {}: iterating a string of {} characters, more than {} (max_loop_iterations)", line,
             text.size(), limits->max_loop_iterations);
      List chars;
      for (char32_t c : text) chars.push_back(Value::string(utf8_encode(std::u32string(1, c))));
      return chars;
    }
    default: fail("chat template line {}: '{}' object is not iterable", line, v.type_name());
  }
}

Value find_method(const Value& object, const std::string& name) {
  static const char* const string_methods[] = {"strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize",
                                               "startswith", "endswith", "replace", "split", "find", "count",
                                               "format", "join"};
  static const char* const dict_methods[] = {"items", "keys", "values", "get"};
  if (object.is_string()) {
    for (const char* m : string_methods)
      if (name == m) {
        std::string s = object.s;
        return Value::function("str." + name, [s, name](const CallArgs& args) { return string_method(s, name, args); });
      }
  } else if (object.is_dict()) {
    for (const char* m : dict_methods)
      if (name == m) {
        Value d = object;
        return Value::function("dict." + name, [d, name](const CallArgs& args) { return dict_method(d, name, args); });
      }
  }
  return Value::undefined();
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& args) {
  int line = args.line;
  auto arg = [&](const char* what) -> const Value& { return need_arg(args, 0, what, "test '" + name + "'"); };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
  if (name == "sequence") return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == Kind::integer;
  if (name == "float") return v.kind == Kind::floating;
  if (name == "boolean") return v.kind == Kind::boolean;
  if (name == "true") return v.kind == Kind::boolean && v.b;
  if (name == "false") return v.kind == Kind::boolean && !v.b;
  if (name == "callable") return v.kind == Kind::function;
  if (name == "lower") return v.is_string() && lower(v.s) == v.s;
  if (name == "upper") return v.is_string() && upper(v.s) == v.s;
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (!v.is_integral()) fail("chat template line {}: test '{}' needs an integer, got {}", line, name, v.type_name());
    if (name == "even") return v.as_int() % 2 == 0;
    if (name == "odd") return v.as_int() % 2 != 0;
    const Value& d = arg("num");
    if (!d.is_integral() || d.as_int() == 0) fail("chat template line {}: divisibleby needs a non-zero integer", line);
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "equalto" || name == "eq" || name == "==") return equals(v, arg("other"));
  if (name == "ne" || name == "!=") return !equals(v, arg("other"));
  if (name == "lt" || name == "<") return less_than(v, arg("other"), line);
  if (name == "le" || name == "<=") return !less_than(arg("other"), v, line);
  if (name == "gt" || name == ">") return less_than(arg("other"), v, line);
  if (name == "ge" || name == ">=") return !less_than(v, arg("other"), line);
  if (name == "sameas") {
    const Value& o = arg("other");
    if (v.kind != o.kind) return false;
    if (v.is_none() || v.kind == Kind::boolean) return equals(v, o);
    return (v.list && v.list == o.list) || (v.dict && v.dict == o.dict) || (v.fn && v.fn == o.fn);
  }
  if (name == "in") {
    const Value& c = arg("seq");
    if (c.is_string()) return v.is_string() && c.s.find(v.s) != std::string::npos;
    if (c.is_dict()) return v.is_string() && c.dict->find(v.s);
    for (const auto& item : iterate(c, line, args.limits))
      if (equals(item, v)) return true;
    return false;
  }
  fail("chat template line {}: unknown test '{}'", line, name);
}

Value apply_filter(const std::string& name, const Value& v, const CallArgs& args) {
  int line = args.line;
  if (name == "default" || name == "d") {
    const Value* dflt = args.get(0, "default_value");
    const Value* boolean = args.get(1, "boolean");
    bool use_default = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
    return use_default ? (dflt ? *dflt : Value::string("")) : v;
  }
  if (name == "safe") return v;
  if (name == "string") return Value::string(text_of(v, args));
  if (name == "tojson") {
    const Value* indent = args.get(0, "indent");
    JsonStyle style = default_json_style(indent && indent->is_integral() ? static_cast<int>(indent->as_int()) : -1);
    if (indent && indent->is_string()) {
      style = default_json_style(0);
      style.indent_text = indent->s;
    }
    if (const Value* sep = args.get(2, "separators"); sep && sep->is_list() && sep->list->size() == 2) {
      style.item_separator = text_of((*sep->list)[0], args);
      style.key_separator = text_of((*sep->list)[1], args);
    }
    if (const Value* sort = args.get(3, "sort_keys")) style.sort_keys = sort->truthy();
    style.max_bytes = max_string_bytes(args);
    if (args.limits) style.max_depth = args.limits->max_depth;
    return Value::string(to_json(v, style, line));
  }
  if (name == "length" || name == "count") return Value::integer(length_of(v, line));
  if (name == "list") return Value::make_list(iterate(v, line, args.limits));
  if (name == "items") {
    if (v.is_undefined()) return Value::make_list({});
    if (!v.is_dict()) fail("chat template line {}: items filter needs a mapping, got {}", line, v.type_name());
    return dict_method(v, "items", args);
  }
  if (name == "first" || name == "last") {
    List items = iterate(v, line, args.limits);
    if (items.empty()) return Value::undefined("the sequence is empty (" + name + ")");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value* sep = args.get(0, "d");
    const Value* attribute = args.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& item : iterate(v, line, args.limits)) {
      out += (first ? "" : (sep ? text_of(*sep, args) : "")) +
             text_of(attribute && attribute->is_string() ? attribute_path(item, attribute->s) : item, args);
      check_string_size(out.size(), args, "join");
      first = false;
    }
    return Value::string(out);
  }
  if (name == "map") {
    List out;
    const Value* attribute = args.get(static_cast<size_t>(-1), "attribute");
    const Value* dflt = args.get(static_cast<size_t>(-1), "default");
    for (const auto& item : iterate(v, line, args.limits)) {
      if (attribute) {
        Value got = attribute_path(item, need_string(*attribute, line, "map attribute"));
        out.push_back(got.is_undefined() && dflt ? *dflt : got);
      } else {
        const std::string& filter = need_string(need_arg(args, 0, "filter", "map"), line, "map filter name");
        out.push_back(apply_filter(filter, item, shifted(args, 1)));
      }
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select") return select_like(v, args, false, true);
  if (name == "reject") return select_like(v, args, false, false);
  if (name == "selectattr") return select_like(v, args, true, true);
  if (name == "rejectattr") return select_like(v, args, true, false);
  if (name == "unique") {
    // Strings (case-insensitively, as jinja2) and integers are looked up in a set, so a long list
    // costs linear time; other values are compared with those kept so far.
    List out;
    std::unordered_set<std::string> seen_strings;
    std::unordered_set<int64_t> seen_integers;
    List others;
    for (const auto& item : iterate(v, line, args.limits)) {
      bool seen;
      if (item.is_string()) {
        seen = !seen_strings.insert(lower(item.s)).second;
      } else if (item.is_integral() || (item.kind == Kind::floating && std::floor(item.f) == item.f &&
                                        std::fabs(item.f) < 9.0e15)) {
        seen = !seen_integers.insert(item.is_integral() ? item.as_int() : static_cast<int64_t>(item.f)).second;
      } else {
        seen = std::any_of(others.begin(), others.end(), [&](const Value& o) { return equals(item, o); });
        if (!seen) others.push_back(item);
      }
      if (!seen) out.push_back(item);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "sort") return sort_values(v, args);
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string s = utf8_decode(v.s);
      std::reverse(s.begin(), s.end());
      return Value::string(utf8_encode(s));
    }
    List items = iterate(v, line, args.limits);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "int") return to_int(v, args);
  if (name == "float") return to_float(v, args);
  if (name == "abs") {
    if (!v.is_number()) fail("chat template line {}: abs needs a number, got {}", line, v.type_name());
    if (v.kind == Kind::floating) return Value::floating(std::fabs(v.f));
    if (v.as_int() == std::numeric_limits<int64_t>::min())
      fail("chat template line {}: abs({}) does not fit in a 64-bit integer", line, v.as_int());
    return Value::integer(std::llabs(v.as_int()));
  }
  if (name == "round") {
    const Value* precision = args.get(0, "precision");
    const Value* method = args.get(1, "method");
    int p = precision ? static_cast<int>(precision->as_int()) : 0;
    std::string how = method && method->is_string() ? method->s : "common";
    double scale = std::pow(10.0, p);
    double x = v.as_double() * scale;
    double r = how == "ceil" ? std::ceil(x) : how == "floor" ? std::floor(x) : std::nearbyint(x);  // Python's round: half to even
    return Value::floating(r / scale);
  }
  if (v.is_undefined() && (name == "trim" || name == "lower" || name == "upper" || name == "title" ||
                           name == "capitalize" || name == "escape" || name == "e" || name == "indent" ||
                           name == "wordcount" || name == "center" || name == "replace"))
    return apply_filter(name, Value::string(""), args);
  if (name == "trim") return Value::string(strip(text_of(v, args), true, true, args.get(0, "chars")));
  if (name == "lower") return Value::string(lower(text_of(v, args)));
  if (name == "upper") return Value::string(upper(text_of(v, args)));
  if (name == "title") return Value::string(title(text_of(v, args)));
  if (name == "capitalize") return Value::string(capitalize(text_of(v, args)));
  if (name == "escape" || name == "e") return Value::string(html_escape(text_of(v, args)));
  if (name == "replace") return string_method(text_of(v, args), "replace", args);
  if (name == "indent") return Value::string(indent_text(text_of(v, args), args));
  if (name == "wordcount") {
    int64_t words = 0;
    bool in_word = false;
    for (char32_t c : utf8_decode(text_of(v, args))) {
      bool word_char = c > 127 || std::isalnum(static_cast<int>(c)) || c == '_';
      if (word_char && !in_word) ++words;
      in_word = word_char;
    }
    return Value::integer(words);
  }
  if (name == "center") {
    const Value* width = args.get(0, "width");
    std::string text = text_of(v, args);
    std::u32string s = utf8_decode(text);
    int64_t w = width ? width->as_int() : 80;
    if (w <= static_cast<int64_t>(s.size())) return Value::string(text);
    int64_t margin = w - static_cast<int64_t>(s.size());
    check_string_size(add_sizes(text.size(), static_cast<size_t>(margin)), args, "center");
    // Python's str.center puts the odd space on the left when the text length is odd.
    int64_t left = margin / 2 + (margin & w & 1);
    return Value::string(std::string(left, ' ') + text + std::string(margin - left, ' '));
  }
  fail("chat template line {}: unknown filter '{}'", line, name);
}

}  // namespace nibble::jinja
