// Values of the Jinja interpreter: Python's none, bool, int, float, str, list, dict, plus callables,
// namespaces and jinja2's Undefined. Lists and dicts are shared and, like the data a chat template
// sees in transformers' immutable sandbox, never mutated after they are built; only a namespace
// changes in place (`{% set ns.x = ... %}`), which is why it is shared by pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace nibble::jinja {

struct Value;
using List = std::vector<Value>;

// A dict keeps its keys in insertion order, as a Python dict does; chat-template dicts are small,
// so a linear search is fine.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

// A template from the Hub is untrusted input: these bound what one render may do, in time and in
// memory. Exceeding one is a nibble::Error naming the limit.
struct Limits {
  // Summed over every loop iteration and macro call of one render; also the most items a list the
  // render builds may have.
  int64_t max_loop_iterations = 1000000;
  // Summed over all text produced, captured blocks included; also the longest string the render
  // may build (by +, ~, *, join, replace, format, indent, center, tojson, printing a value).
  size_t max_output_bytes = 64u << 20;
  // Nesting of macro calls and of expressions; also of the values printed or compared.
  int max_depth = 256;
  // Summed over the render, in bytes: every value an expression produces or a filter reads (the
  // value itself, its string, its list's or dict's entries). Loops are counted and values are
  // capped, but a value can grow inside a loop ("{% set ns.s = ns.s ~ ns.s %}") and a loop body can
  // be long; this bounds the total work.
  size_t max_work = size_t{1} << 30;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  int line = 0;
  const Limits* limits = nullptr;  // the render's; null (no bounds) only outside a render
  // Keyword argument `name`, else positional argument `index`, else nullptr.
  const Value* get(size_t index, const std::string& name) const;
};
using Function = std::function<Value(const CallArgs&)>;

enum class Kind { undefined, none, boolean, integer, floating, string, list, dict, function, ns };

struct Value {
  Kind kind = Kind::undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // the string; for undefined, what was looked up (for error messages)
  std::shared_ptr<const List> list;
  std::shared_ptr<Dict> dict;  // dict and namespace; only a namespace's is ever changed
  std::shared_ptr<const Function> fn;
  std::string fn_name;

  static Value undefined(std::string what = "") { Value v; v.s = std::move(what); return v; }
  static Value none() { Value v; v.kind = Kind::none; return v; }
  static Value boolean(bool x) { Value v; v.kind = Kind::boolean; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Kind::integer; v.i = x; return v; }
  static Value floating(double x) { Value v; v.kind = Kind::floating; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.kind = Kind::string; v.s = std::move(x); return v; }
  static Value make_list(List items);
  static Value make_dict(Dict d);
  static Value make_namespace(Dict d);
  static Value function(std::string name, Function f);

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_none() const { return kind == Kind::none; }
  bool is_string() const { return kind == Kind::string; }
  bool is_list() const { return kind == Kind::list; }
  bool is_dict() const { return kind == Kind::dict; }
  // Python's numbers: bool is an int subclass, so True + 1 == 2.
  bool is_number() const { return kind == Kind::integer || kind == Kind::floating || kind == Kind::boolean; }
  bool is_integral() const { return kind == Kind::integer || kind == Kind::boolean; }
  int64_t as_int() const { return kind == Kind::boolean ? (b ? 1 : 0) : i; }
  double as_double() const { return kind == Kind::floating ? f : static_cast<double>(as_int()); }

  bool truthy() const;
  const char* type_name() const;
};

Value from_json(const nlohmann::ordered_json& j);

// Python's str(): what {{ value }} prints. Undefined prints as "". A text longer than max_bytes,
// or a value nested deeper than max_depth, is an error (lists can share items, so a small value
// can print as a huge text).
std::string to_str(const Value& v, size_t max_bytes = SIZE_MAX, int max_depth = 256);
// Python's repr(), used inside str() of lists and dicts; bounded as to_str.
std::string to_repr(const Value& v, size_t max_bytes = SIZE_MAX, int max_depth = 256);

// json.dumps(v, ensure_ascii=False, indent=..., separators=..., sort_keys=...), as transformers'
// tojson filter calls it. indent < 0 means None.
struct JsonStyle {
  int indent = -1;
  std::string indent_text;  // used when the indent argument is a string
  std::string item_separator;
  std::string key_separator;
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // a longer result is an error
  int max_depth = 256;          // a deeper value is an error
};
JsonStyle default_json_style(int indent);
std::string to_json(const Value& v, const JsonStyle& style, int line);

// Python's == between values (1 == 1.0, lists and dicts by content; the same list or dict is
// equal to itself without a look inside, as in Python). Values nested deeper than 256, or a
// comparison visiting more than 10 million items, are an error.
bool equals(const Value& a, const Value& b);
// Python's <, for numbers, strings and lists; other pairs are an error naming `line`.
bool less_than(const Value& a, const Value& b, int line);

// Python strings count code points; these convert UTF-8 text to and from code points.
std::u32string utf8_decode(const std::string& s);
std::string utf8_encode(const std::u32string& s);

}  // namespace nibble::jinja
