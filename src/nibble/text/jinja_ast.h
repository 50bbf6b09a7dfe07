// The syntax tree of a Jinja template. Every node keeps the template line and column it came
// from, so a failure while rendering names the place in the template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nibble/text/jinja_value.h"

namespace nibble::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Type {
    literal,    // value
    name,       // name
    list,       // args: the items (tuples are lists too)
    dict,       // args: key, value, key, value, ...
    attribute,  // args[0].name
    subscript,  // args[0][args[1]]
    slice,      // args[0][args[1]:args[2]:args[3]], any of 1..3 may be null
    call,       // args[0](args[1..], keyword)
    filter,     // args[0] | name(args[1..], keyword)
    test,       // args[0] is [not] name(args[1..])
    unary,      // name in {not, -, +}; args[0]
    binary,     // name is the operator (and, or, +, ==, in, not in, ~, ...); args[0], args[1]
    condition,  // args[0] if args[1] else args[2] (args[2] may be null)
    compare,    // args[0] ops[0] args[1] ops[1] args[2] ...: Python's chained comparison
  };
  Type type;
  int line = 0;
  int column = 0;
  Value value;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;  // compare only
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  int depth = 1;  // this node and the deepest chain of nodes below it; the parser bounds it
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Type {
    text,       // text
    output,     // {{ expr }}
    if_block,   // branches: (condition, body); the else branch has a null condition
    for_loop,   // for targets in expr [if filter] body [else else_body]
    set,        // set targets = expr, or set targets[0].attribute = expr
    set_block,  // {% set targets[0] %}body{% endset %}
    macro,      // {% macro name(params) %}body{% endmacro %}
    call_block, // {% call expr %}body{% endcall %}
    loop_break,
    loop_continue,
    generation, // transformers' {% generation %}body{% endgeneration %}: renders its body
  };
  Type type;
  int line = 0;
  int column = 0;
  std::string text;
  std::string name;
  std::string attribute;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::pair<std::string, ExprPtr>> params;
  Body body;
  Body else_body;
};

}  // namespace nibble::jinja
