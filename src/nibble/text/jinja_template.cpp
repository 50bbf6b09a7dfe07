#include "nibble/text/jinja_template.h"

#include <cmath>
#include <ctime>

#include "nibble/core/error.h"
#include "nibble/text/jinja_builtins.h"
#include "nibble/text/jinja_parser.h"

namespace nibble::jinja {
namespace {

enum class Flow { normal, loop_break, loop_continue };

// An undefined value remembers why it is undefined; using it for anything but printing,
// testing or iterating is an error that says so.
[[noreturn]] void undefined_error(const Value& v, int line, const std::string& doing) {
  fail("chat template line {}: {} ({})", line, v.s.empty() ? std::string("value is undefined") : v.s, doing);
}

// jinja2's sandbox refuses range() of more items than this (MAX_RANGE), so transformers does too.
constexpr int64_t kMaxRange = 100000;

// Python's integers do not overflow; nibble's are 64-bit, so a result that does not fit is an
// error rather than a wrapped (or, in C++, undefined) value. Called with the __builtin_*_overflow
// that computed the result, before the result is read.
void check_overflow(bool overflowed, int line, const std::string& op) {
  if (overflowed) fail("chat template line {}: integer overflow in '{}' (nibble's integers are 64-bit)", line, op);
}

// Python's a % b (the sign of b), computed from C++'s remainder so nothing can overflow.
int64_t python_mod(int64_t a, int64_t b) {
  if (b == -1) return 0;
  int64_t r = a % b;
  return r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

class Renderer {
 public:
  Renderer(const Limits& limits, const Dict& variables) : limits_(limits) {
    Dict globals;
    add_builtin_globals(globals);
    for (const auto& kv : variables.items) globals.set(kv.first, kv.second);
    scopes_.push_back(std::move(globals));
  }

  // A namespace can hold itself ({% set ns.me = ns %}), a cycle of shared pointers that would never
  // be freed; the render empties every namespace it made when it ends.
  ~Renderer() {
    for (const auto& d : namespaces_) d->items.clear();
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  std::string render(const Body& body) {
    std::string out;
    exec(body, out);
    return out;
  }

 private:
  // ---- statements ----

  // The measure of a value for max_work, in bytes: the value itself, plus its string's bytes or
  // its list's or dict's entries. Every expression costs at least one Value, so a render of very
  // many cheap evaluations is bounded too, not only one of a few large ones.
  static size_t work_of(const Value& v) {
    switch (v.kind) {
      case Kind::string: return sizeof(Value) + v.s.size();
      case Kind::list: return sizeof(Value) * (1 + v.list->size());
      case Kind::dict: case Kind::ns: return sizeof(Value) * (1 + v.dict->items.size());
      default: return sizeof(Value);
    }
  }
  void charge(size_t work, int line) {
    work_ += work;
    if (work_ > limits_.max_work)
      fail("chat template line {}: the render handles more than {} bytes of values (max_work)", line,
           limits_.max_work);
  }
  std::string text_of(const Value& v) const { return to_str(v, limits_.max_output_bytes, limits_.max_depth); }
  std::string repr_of(const Value& v) const { return to_repr(v, limits_.max_output_bytes, limits_.max_depth); }
  void check_string_size(size_t bytes, int line, const char* what) const {
    if (bytes > limits_.max_output_bytes)
      fail("chat template line {}: {} would build a string of more than {} bytes (max_output_bytes)", line, what,
           limits_.max_output_bytes);
  }
  void check_list_size(size_t items, int line, const char* what) const {
    if (items > static_cast<uint64_t>(limits_.max_loop_iterations))
      fail("chat template line {}: {} would build a list of more than {} items (max_loop_iterations)", line, what,
           limits_.max_loop_iterations);
  }
  // The bytes of a list's strings: copying a list copies them, which work_of(list) does not count.
  static size_t string_bytes_in(const List& items) {
    size_t bytes = 0;
    for (const auto& item : items) bytes += item.is_string() ? item.s.size() : 0;
    return bytes;
  }

  void emit(std::string& out, const std::string& text) {
    produced_ += text.size();
    if (produced_ > limits_.max_output_bytes)
      fail("chat template: output exceeds the limit of {} bytes (max_output_bytes)", limits_.max_output_bytes);
    out += text;
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& stmt : body) {
      Flow flow = exec(*stmt, out);
      if (flow != Flow::normal) return flow;
    }
    return Flow::normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    switch (s.type) {
      case Stmt::Type::text: emit(out, s.text); return Flow::normal;
      case Stmt::Type::output: emit(out, text_of(eval(*s.expr))); return Flow::normal;
      case Stmt::Type::if_block:
        for (const auto& branch : s.branches)
          if (!branch.first || eval(*branch.first).truthy()) return exec(branch.second, out);
        return Flow::normal;
      case Stmt::Type::for_loop: exec_for(s, out); return Flow::normal;
      case Stmt::Type::set: exec_set(s); return Flow::normal;
      case Stmt::Type::set_block: {
        std::string captured;
        exec(s.body, captured);
        scopes_.back().set(s.targets[0], Value::string(captured));
        return Flow::normal;
      }
      case Stmt::Type::macro: scopes_.back().set(s.name, make_macro(s)); return Flow::normal;
      case Stmt::Type::call_block: {
        const Stmt* block = &s;
        Value caller = Value::function("caller", [this, block](const CallArgs&) {
          std::string captured;
          exec(block->body, captured);
          return Value::string(captured);
        });
        emit(out, text_of(eval_call(*s.expr, &caller)));
        return Flow::normal;
      }
      case Stmt::Type::loop_break: return Flow::loop_break;
      case Stmt::Type::loop_continue: return Flow::loop_continue;
      case Stmt::Type::generation: return exec(s.body, out);
    }
    return Flow::normal;
  }

  void exec_set(const Stmt& s) {
    Value value = eval(*s.expr);
    if (!s.attribute.empty()) {
      Value target = lookup(s.targets[0]);
      if (target.kind != Kind::ns)
        fail("chat template line {}: cannot set attribute '{}' of '{}', which is a {} and not a namespace", s.line,
             s.attribute, s.targets[0], target.type_name());
      target.dict->set(s.attribute, std::move(value));
      return;
    }
    assign(s.targets, value, s.line);
  }

  void assign(const std::vector<std::string>& targets, const Value& value, int line) {
    if (targets.size() == 1) {
      scopes_.back().set(targets[0], value);
      return;
    }
    List items = iterate(value, line, &limits_);
    if (items.size() != targets.size())
      fail("chat template line {}: cannot unpack {} values into {} names", line, items.size(), targets.size());
    for (size_t k = 0; k < targets.size(); ++k) scopes_.back().set(targets[k], items[k]);
  }

  void count_iteration(int line) {
    if (++iterations_ > limits_.max_loop_iterations)
      fail("chat template line {}: more than {} loop iterations (max_loop_iterations)", line,
           limits_.max_loop_iterations);
  }

  void exec_for(const Stmt& s, std::string& out) {
    List all = iterate(eval(*s.expr), s.line, &limits_);
    charge(sizeof(Value) * all.size() + string_bytes_in(all), s.line);
    scopes_.emplace_back();
    // With a loop filter, jinja2 filters first, so loop.length and loop.last count kept items.
    List items;
    if (s.filter) {
      for (const auto& item : all) {
        count_iteration(s.line);
        assign(s.targets, item, s.line);
        if (eval(*s.filter).truthy()) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      count_iteration(s.line);
      assign(s.targets, items[k], s.line);
      scopes_.back().set("loop", make_loop(items, k));
      if (exec(s.body, out) == Flow::loop_break) break;
    }
    if (n == 0) exec(s.else_body, out);
    scopes_.pop_back();
  }

  Value make_loop(const List& items, int64_t k) {
    const int64_t n = static_cast<int64_t>(items.size());
    Dict loop;
    loop.set("index", Value::integer(k + 1));
    loop.set("index0", Value::integer(k));
    loop.set("revindex", Value::integer(n - k));
    loop.set("revindex0", Value::integer(n - k - 1));
    loop.set("first", Value::boolean(k == 0));
    loop.set("last", Value::boolean(k == n - 1));
    loop.set("length", Value::integer(n));
    loop.set("depth", Value::integer(1));
    loop.set("depth0", Value::integer(0));
    loop.set("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
    loop.set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("there is no next item"));
    loop.set("cycle", Value::function("loop.cycle", [k](const CallArgs& args) {
      if (args.positional.empty()) fail("chat template line {}: loop.cycle() needs at least one value", args.line);
      return args.positional[k % args.positional.size()];
    }));
    return Value::make_dict(std::move(loop));
  }

  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    return Value::function(s.name, [this, macro](const CallArgs& args) {
      Dict locals;
      size_t positional = 0;
      for (size_t k = 0; k < macro->params.size(); ++k) {
        const std::string& param = macro->params[k].first;
        const Value* given = nullptr;
        for (const auto& kv : args.keyword)
          if (kv.first == param) given = &kv.second;
        if (!given && positional < args.positional.size()) given = &args.positional[positional++];
        if (given) locals.set(param, *given);
        else if (macro->params[k].second) locals.set(param, eval(*macro->params[k].second));
        else locals.set(param, Value::undefined("macro parameter '" + param + "' was not given"));
      }
      if (positional < args.positional.size())
        fail("chat template line {}: macro '{}' takes {} arguments but got {}", args.line, macro->name,
             macro->params.size(), args.positional.size());
      for (const auto& kv : args.keyword)
        if (kv.first == "caller") locals.set("caller", kv.second);
      DepthGuard guard(*this, args.line);
      // Each call counts as a loop iteration: a macro calling itself twice is a loop too (2^depth).
      count_iteration(args.line);
      // A macro sees the template's globals and its own arguments, not its caller's locals.
      std::vector<Dict> saved;
      saved.swap(scopes_);
      scopes_.push_back(saved.front());
      scopes_.push_back(std::move(locals));
      std::string out;
      try {
        exec(macro->body, out);
      } catch (...) {
        saved.front() = std::move(scopes_.front());
        scopes_.swap(saved);
        throw;
      }
      saved.front() = std::move(scopes_.front());
      scopes_.swap(saved);
      return Value::string(out);
    });
  }

  struct DepthGuard {
    DepthGuard(Renderer& r, int line) : r(r) {
      if (++r.depth_ > r.limits_.max_depth)
        fail("chat template line {}: nesting deeper than {} (max_depth)", line, r.limits_.max_depth);
    }
    ~DepthGuard() { --r.depth_; }
    Renderer& r;
  };

  // ---- expressions ----

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it)
      if (const Value* v = it->find(name)) return *v;
    return Value::undefined("'" + name + "' is undefined");
  }

  Value eval(const Expr& e) {
    DepthGuard guard(*this, e.line);
    Value v = eval_node(e);
    charge(work_of(v), e.line);
    return v;
  }

  Value eval_node(const Expr& e) {
    switch (e.type) {
      case Expr::Type::literal: return e.value;
      case Expr::Type::name: return lookup(e.name);
      case Expr::Type::list: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::make_list(std::move(items));
      }
      case Expr::Type::dict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          if (!key.is_string())
            fail("chat template line {}: dict keys must be strings here, got {}", e.line, key.type_name());
          d.set(key.s, eval(*e.args[k + 1]));
        }
        return Value::make_dict(std::move(d));
      }
      case Expr::Type::attribute: return get_attribute(eval(*e.args[0]), e.name, e.line);
      case Expr::Type::subscript: return get_item(eval(*e.args[0]), eval(*e.args[1]), e.line);
      case Expr::Type::slice: return eval_slice(e);
      case Expr::Type::call: return eval_call(e, nullptr);
      case Expr::Type::filter: {
        Value input = eval(*e.args[0]);
        CallArgs args = eval_args(e);
        charge(work_of(input), e.line);  // a filter reads its whole input
        return apply_filter(e.name, input, args);
      }
      case Expr::Type::test: {
        Value input = eval(*e.args[0]);
        CallArgs args = eval_args(e);
        charge(work_of(input), e.line);
        return Value::boolean(apply_test(e.name, input, args) != e.negated);
      }
      case Expr::Type::unary: {
        Value x = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!x.truthy());
        if (x.is_undefined()) undefined_error(x, e.line, "unary " + e.name);
        if (!x.is_number())
          fail("chat template line {}: bad operand type for unary {}: '{}'", e.line, e.name, x.type_name());
        if (e.name == "+") return x.kind == Kind::boolean ? Value::integer(x.as_int()) : x;
        if (x.kind == Kind::floating) return Value::floating(-x.f);
        int64_t negated = 0;
        check_overflow(__builtin_sub_overflow(int64_t{0}, x.as_int(), &negated), e.line, "-");
        return Value::integer(negated);
      }
      case Expr::Type::binary: return eval_binary(e);
      case Expr::Type::compare: {
        // a < b < c is (a < b) and (b < c), with b evaluated once.
        Value left = eval(*e.args[0]);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          if (!compare(e.ops[k], left, right, e.line)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Expr::Type::condition:
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the inline if had no else branch");
    }
    return Value::undefined();
  }

  CallArgs eval_args(const Expr& e) {
    CallArgs args;
    args.line = e.line;
    args.limits = &limits_;
    for (size_t k = 1; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k]));
    for (const auto& kv : e.keyword) args.keyword.emplace_back(kv.first, eval(*kv.second));
    return args;
  }

  Value eval_call(const Expr& e, const Value* caller) {
    Value callee = eval(*e.args[0]);
    if (callee.is_undefined()) undefined_error(callee, e.line, "it was called as a function");
    if (callee.kind != Kind::function)
      fail("chat template line {}: '{}' object is not callable", e.line, callee.type_name());
    CallArgs args = eval_args(e);
    if (caller) args.keyword.emplace_back("caller", *caller);
    return (*callee.fn)(args);
  }

  Value get_attribute(const Value& object, const std::string& name, int line) {
    if (object.is_undefined()) undefined_error(object, line, "reading attribute '" + name + "'");
    if (object.kind == Kind::ns) {
      if (const Value* v = object.dict->find(name)) return *v;
      return Value::undefined("'Namespace' has no attribute '" + name + "'");
    }
    // jinja2 tries the Python attribute first (a dict's .items), then the item (message.role).
    Value method = find_method(object, name);
    if (!method.is_undefined()) return method;
    if (object.is_dict()) {
      if (const Value* v = object.dict->find(name)) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    return Value::undefined("'" + std::string(object.type_name()) + " object' has no attribute '" + name + "'");
  }

  Value get_item(const Value& object, const Value& key, int line) {
    if (object.is_undefined()) undefined_error(object, line, "reading an item of it");
    if (object.is_dict() || object.kind == Kind::ns) {
      if (key.is_string()) {
        if (const Value* v = object.dict->find(key.s)) return *v;
        if (object.is_dict()) {
          Value method = find_method(object, key.s);
          if (!method.is_undefined()) return method;
        }
      }
      return Value::undefined("'dict object' has no attribute " + repr_of(key));
    }
    if ((object.is_list() || object.is_string()) && key.is_integral()) {
      int64_t index = key.as_int();
      if (object.is_list()) {
        int64_t n = static_cast<int64_t>(object.list->size());
        if (index < 0) index += n;
        if (index < 0 || index >= n) return Value::undefined("list object has no element " + text_of(key));
        return (*object.list)[index];
      }
      std::u32string chars = utf8_decode(object.s);
      int64_t n = static_cast<int64_t>(chars.size());
      if (index < 0) index += n;
      if (index < 0 || index >= n) return Value::undefined("str object has no element " + text_of(key));
      return Value::string(utf8_encode(chars.substr(index, 1)));
    }
    if (key.is_string()) return get_attribute(object, key.s, line);
    return Value::undefined("'" + std::string(object.type_name()) + " object' has no element " + repr_of(key));
  }

  Value eval_slice(const Expr& e) {
    Value object = eval(*e.args[0]);
    if (object.is_undefined()) undefined_error(object, e.line, "slicing it");
    auto bound = [&](const ExprPtr& p, const char* what) -> std::pair<bool, int64_t> {
      if (!p) return {false, 0};
      Value v = eval(*p);
      if (v.is_none()) return {false, 0};
      if (!v.is_integral()) fail("chat template line {}: slice {} must be an integer, got {}", e.line, what, v.type_name());
      return {true, v.as_int()};
    };
    auto [has_start, start] = bound(e.args[1], "start");
    auto [has_stop, stop] = bound(e.args[2], "stop");
    // Not a structured binding: the lambda below captures it, which C++17 (and clang) forbids.
    std::pair<bool, int64_t> step_bound = bound(e.args[3], "step");
    int64_t step = step_bound.first ? step_bound.second : 1;
    if (step == 0) fail("chat template line {}: slice step cannot be zero", e.line);
    std::u32string chars;
    int64_t n;
    if (object.is_list()) n = static_cast<int64_t>(object.list->size());
    else if (object.is_string()) { chars = utf8_decode(object.s); n = static_cast<int64_t>(chars.size()); }
    else fail("chat template line {}: cannot slice a {}", e.line, object.type_name());
    // Python's slice.indices()
    auto clamp = [&](bool has, int64_t v, int64_t dflt) {
      if (!has) return dflt;
      if (v < 0) v += n;
      if (step > 0) return v < 0 ? 0 : (v > n ? n : v);
      return v < 0 ? -1 : (v >= n ? n - 1 : v);
    };
    int64_t lo = clamp(has_start, start, step > 0 ? 0 : n - 1);
    int64_t hi = clamp(has_stop, stop, step > 0 ? n : -1);
    List items;
    std::u32string picked;
    for (int64_t k = lo; step > 0 ? k < hi : k > hi;) {
      if (object.is_list()) items.push_back((*object.list)[k]);
      else picked += chars[k];
      // Stop before k + step passes hi: with a step near 2^63 the sum itself would overflow.
      if (step > 0 ? step >= hi - k : step <= hi - k) break;
      k += step;
    }
    return object.is_list() ? Value::make_list(std::move(items)) : Value::string(utf8_encode(picked));
  }

  Value eval_binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    Value a = eval(*e.args[0]);
    Value b = eval(*e.args[1]);
    if (op == "~") {
      std::string left = text_of(a), right = text_of(b);
      check_string_size(left.size() + right.size(), e.line, "'~'");
      return Value::string(left + right);
    }
    if (a.is_undefined()) undefined_error(a, e.line, "operator " + op);
    if (b.is_undefined()) undefined_error(b, e.line, "operator " + op);
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        check_string_size(a.s.size() + b.s.size(), e.line, "'+'");
        return Value::string(a.s + b.s);
      }
      if (a.is_list() && b.is_list()) {
        check_list_size(a.list->size() + b.list->size(), e.line, "'+'");
        charge(string_bytes_in(*a.list) + string_bytes_in(*b.list), e.line);
        List items = *a.list;
        items.insert(items.end(), b.list->begin(), b.list->end());
        return Value::make_list(std::move(items));
      }
    }
    if (op == "*" && ((a.is_string() || a.is_list()) && b.is_integral())) return repeat(a, b.as_int(), e.line);
    if (op == "*" && ((b.is_string() || b.is_list()) && a.is_integral())) return repeat(b, a.as_int(), e.line);
    if (!a.is_number() || !b.is_number())
      fail("chat template line {}: unsupported operand types for {}: '{}' and '{}'", e.line, op, a.type_name(),
           b.type_name());
    bool ints = a.is_integral() && b.is_integral();
    if (op == "/") {
      if (b.as_double() == 0) fail("chat template line {}: division by zero", e.line);
      return Value::floating(a.as_double() / b.as_double());
    }
    if ((op == "//" || op == "%") && b.as_double() == 0) fail("chat template line {}: division by zero", e.line);
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int(), r = 0;
      bool overflowed = false;
      if (op == "+") overflowed = __builtin_add_overflow(x, y, &r);
      else if (op == "-") overflowed = __builtin_sub_overflow(x, y, &r);
      else if (op == "*") overflowed = __builtin_mul_overflow(x, y, &r);
      else if (op == "//" && y == -1) overflowed = __builtin_sub_overflow(int64_t{0}, x, &r);  // INT64_MIN // -1
      else if (op == "//") r = floor_div(x, y);
      check_overflow(overflowed, e.line, op);
      if (op == "+" || op == "-" || op == "*" || op == "//") return Value::integer(r);
      if (op == "%") return Value::integer(python_mod(x, y));
      if (op == "**") {
        if (y < 0) return Value::floating(std::pow(static_cast<double>(x), static_cast<double>(y)));
        // 0, 1 and -1 never grow; any other base overflows within 63 multiplications.
        if (x == 0 || x == 1) return Value::integer(y == 0 ? 1 : x);
        if (x == -1) return Value::integer(y % 2 == 0 ? 1 : -1);
        int64_t power = 1;
        for (int64_t k = 0; k < y; ++k) check_overflow(__builtin_mul_overflow(power, x, &power), e.line, op);
        return Value::integer(power);
      }
    }
    double x = a.as_double(), y = b.as_double();
    if (op == "+") return Value::floating(x + y);
    if (op == "-") return Value::floating(x - y);
    if (op == "*") return Value::floating(x * y);
    if (op == "//") return Value::floating(std::floor(x / y));
    if (op == "%") return Value::floating(x - std::floor(x / y) * y);
    if (op == "**") return Value::floating(std::pow(x, y));
    fail("chat template line {}: unknown operator '{}'", e.line, op);
  }

  bool compare(const std::string& op, const Value& a, const Value& b, int line) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in" || op == "not in") return contains(b, a, line) == (op == "in");
    if (a.is_undefined()) undefined_error(a, line, "operator " + op);
    if (b.is_undefined()) undefined_error(b, line, "operator " + op);
    if (op == "<") return less_than(a, b, line);
    if (op == ">") return less_than(b, a, line);
    if (op == "<=") return !less_than(b, a, line);
    return !less_than(a, b, line);  // >=
  }

  Value repeat(const Value& v, int64_t times, int line) {
    if (times < 0) times = 0;
    size_t count = static_cast<size_t>(times);
    // Divided, not multiplied, so that a huge count cannot wrap the product around to a small one.
    size_t unit = v.is_string() ? v.s.size() : string_bytes_in(*v.list);
    if (unit != 0 && count > limits_.max_output_bytes / unit)
      fail("chat template line {}: repetition larger than {} bytes (max_output_bytes)", line, limits_.max_output_bytes);
    if (v.is_list() && !v.list->empty())
      check_list_size(count > SIZE_MAX / v.list->size() ? SIZE_MAX : count * v.list->size(), line, "'*'");
    if (v.is_list()) charge(count * unit, line);
    // Empty repeated any number of times is empty: return before a loop of 2^63 turns.
    if (v.is_string() && v.s.empty()) return Value::string("");
    if (v.is_list() && v.list->empty()) return Value::make_list({});
    if (v.is_string()) {
      std::string out;
      for (int64_t k = 0; k < times; ++k) out += v.s;
      return Value::string(out);
    }
    List items;
    for (int64_t k = 0; k < times; ++k) items.insert(items.end(), v.list->begin(), v.list->end());
    return Value::make_list(std::move(items));
  }

  bool contains(const Value& container, const Value& item, int line) {
    if (container.is_string()) {
      if (!item.is_string())
        fail("chat template line {}: 'in <string>' requires string as left operand, not {}", line, item.type_name());
      return container.s.find(item.s) != std::string::npos;
    }
    if (container.is_dict()) return item.is_string() && container.dict->find(item.s) != nullptr;
    charge(work_of(container), line);
    for (const auto& v : iterate(container, line, &limits_))
      if (equals(v, item)) return true;
    return false;
  }

  // ---- globals ----

  void add_builtin_globals(Dict& g) {
    g.set("range", Value::function("range", [](const CallArgs& args) {
      int64_t start = 0, stop = 0, step = 1;
      for (const auto& a : args.positional)
        if (!a.is_integral()) fail("chat template line {}: range() takes integers, got {}", args.line, a.type_name());
      if (args.positional.size() == 1) stop = args.positional[0].as_int();
      else if (args.positional.size() >= 2) {
        start = args.positional[0].as_int();
        stop = args.positional[1].as_int();
        if (args.positional.size() == 3) step = args.positional[2].as_int();
      } else fail("chat template line {}: range() takes 1 to 3 arguments", args.line);
      if (step == 0) fail("chat template line {}: range() step must not be zero", args.line);
      // Python's len(range(...)), in 128 bits so that no bound or step can overflow it.
      __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
      __int128 magnitude = step > 0 ? static_cast<__int128>(step) : -static_cast<__int128>(step);
      __int128 length = span <= 0 ? 0 : (span - 1) / magnitude + 1;
      if (length > kMaxRange)
        fail("chat template line {}: range() of {} items; the sandbox allows at most {} (as jinja2's MAX_RANGE)",
             args.line, static_cast<int64_t>(std::min<__int128>(length, INT64_MAX)), kMaxRange);
      List items;
      items.reserve(static_cast<size_t>(length));
      for (int64_t k = 0; k < static_cast<int64_t>(length); ++k) items.push_back(Value::integer(start + k * step));
      return Value::make_list(std::move(items));
    }));
    g.set("namespace", Value::function("namespace", [this](const CallArgs& args) {
      Dict d;
      for (const auto& a : args.positional) {
        if (!a.is_dict()) fail("chat template line {}: namespace() takes a dict or keyword arguments", args.line);
        for (const auto& kv : a.dict->items) d.set(kv.first, kv.second);
      }
      for (const auto& kv : args.keyword) d.set(kv.first, kv.second);
      Value ns = Value::make_namespace(std::move(d));
      namespaces_.push_back(ns.dict);
      return ns;
    }));
    g.set("dict", Value::function("dict", [](const CallArgs& args) {
      Dict d;
      for (const auto& a : args.positional) {
        if (!a.is_dict()) fail("chat template line {}: dict() takes a dict or keyword arguments", args.line);
        for (const auto& kv : a.dict->items) d.set(kv.first, kv.second);
      }
      for (const auto& kv : args.keyword) d.set(kv.first, kv.second);
      return Value::make_dict(std::move(d));
    }));
    g.set("raise_exception", Value::function("raise_exception", [](const CallArgs& args) -> Value {
      const Value* message = args.get(0, "message");
      fail("chat template line {}: raise_exception: {}", args.line,
           message ? to_str(*message, args.limits->max_output_bytes, args.limits->max_depth) : std::string());
    }));
    g.set("strftime_now", Value::function("strftime_now", [](const CallArgs& args) {
      const Value* format = args.get(0, "format");
      if (!format || !format->is_string())
        fail("chat template line {}: strftime_now() takes a format string", args.line);
      std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, format->s.c_str(), &local);
      return Value::string(std::string(buf, n));
    }));
  }

  const Limits& limits_;
  std::vector<Dict> scopes_;
  int64_t iterations_ = 0;
  size_t work_ = 0;
  std::vector<std::shared_ptr<Dict>> namespaces_;
  size_t produced_ = 0;
  int depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source) : body_(std::make_shared<const Body>(parse(source))) {}

std::string Template::render(const Dict& variables, const Limits& limits) const {
  Renderer renderer(limits, variables);
  return renderer.render(*body_);
}

}  // namespace nibble::jinja
