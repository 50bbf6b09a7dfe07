#include "nibble/text/jinja_parser.h"

#include <algorithm>
#include <cstdlib>

#include "nibble/core/error.h"
#include "nibble/text/jinja_lexer.h"

namespace nibble::jinja {
namespace {

// How deep blocks and expressions may nest. Parsing, evaluating and destroying the tree all
// recurse, so an untrusted "((((..." or "a+a+a+..." must stop here, not overflow the stack. Real
// chat templates nest a few levels; Python's own recursion limit stops jinja2 near 1000.
constexpr int kMaxNesting = 256;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_template() {
    std::string end_tag;
    Body body = parse_body({}, end_tag);
    return body;
  }

 private:
  const Token& peek(size_t ahead = 0) const {
    size_t k = pos_ + ahead;
    return k < tokens_.size() ? tokens_[k] : tokens_.back();
  }
  const Token& next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  [[noreturn]] void error(const Token& at, const std::string& what) const {
    fail("chat template line {}, column {}: {}", at.line, at.column, what);
  }

  // Held by every parse function that recurses: bounds how deep the parser's own stack goes.
  struct RecursionGuard {
    RecursionGuard(Parser& p) : p(p) {
      if (++p.recursion_ > kMaxNesting)
        p.error(p.peek(), "blocks or expressions nest deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~RecursionGuard() { --p.recursion_; }
    Parser& p;
  };

  // Every node with children passes through here once they are attached: bounds the depth of the
  // tree itself, which loops (a+a+a..., x|f|f|f...) grow without recursing.
  ExprPtr nested(ExprPtr e) {
    for (const auto& a : e->args)
      if (a) e->depth = std::max(e->depth, a->depth + 1);
    for (const auto& kv : e->keyword) e->depth = std::max(e->depth, kv.second->depth + 1);
    if (e->depth > kMaxNesting)
      fail("chat template line {}, column {}: expression nests deeper than {} levels", e->line, e->column,
           kMaxNesting);
    return e;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::text: return "template text";
      case TokenType::output_begin: return "'{{'";
      case TokenType::output_end: return "'}}'";
      case TokenType::block_begin: return "'{%'";
      case TokenType::block_end: return "'%}'";
      case TokenType::end_of_input: return "the end of the template";
      case TokenType::string: return "a string";
      default: return "'" + t.value + "'";
    }
  }

  bool at_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::op && peek(ahead).value == op;
  }
  bool at_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::name && peek(ahead).value == name;
  }
  void expect_op(const char* op) {
    if (!at_op(op)) error(peek(), std::string("expected '") + op + "', found " + describe(peek()));
    next();
  }
  std::string expect_name(const char* what) {
    if (peek().type != TokenType::name) error(peek(), std::string("expected ") + what + ", found " + describe(peek()));
    return next().value;
  }
  void expect_block_end(const std::string& tag) {
    if (peek().type != TokenType::block_end)
      error(peek(), "expected '%}' to end the '" + tag + "' tag, found " + describe(peek()));
    next();
  }

  // Parses statements until a block tag whose name is in `ends`; leaves that tag's name in
  // `end_tag` with the parser positioned after the name.
  Body parse_body(const std::vector<std::string>& ends, std::string& end_tag) {
    RecursionGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::end_of_input) {
        if (!ends.empty()) error(t, "expected '{% " + ends.back() + " %}' before the end of the template");
        return body;
      }
      if (t.type == TokenType::text) {
        auto s = make_stmt(Stmt::Type::text, t);
        s->text = t.value;
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::output_begin) {
        auto s = make_stmt(Stmt::Type::output, t);
        next();
        s->expr = parse_expression();
        if (peek().type != TokenType::output_end) error(peek(), "expected '}}', found " + describe(peek()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::block_begin) {
        next();
        const Token& tag = peek();
        if (tag.type != TokenType::name) error(tag, "expected a statement name after '{%', found " + describe(tag));
        for (const auto& e : ends) {
          if (tag.value == e) {
            end_tag = e;
            next();
            return body;
          }
        }
        body.push_back(parse_statement());
      } else {
        error(t, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr make_stmt(Stmt::Type type, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->type = type;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  StmtPtr parse_statement() {
    const Token& tag = next();
    const std::string& name = tag.value;
    if (name == "if") return parse_if(tag);
    if (name == "for") return parse_for(tag);
    if (name == "set") return parse_set(tag);
    if (name == "macro") return parse_macro(tag);
    if (name == "call") return parse_call_block(tag);
    if (name == "break" || name == "continue") {
      auto s = make_stmt(name == "break" ? Stmt::Type::loop_break : Stmt::Type::loop_continue, tag);
      if (loop_depth_ == 0) error(tag, "'" + name + "' outside of a for loop");
      expect_block_end(name);
      return s;
    }
    if (name == "generation") {
      auto s = make_stmt(Stmt::Type::generation, tag);
      expect_block_end(name);
      std::string end;
      s->body = parse_body({"endgeneration"}, end);
      expect_block_end(end);
      return s;
    }
    static const char* const known_ends[] = {"endif", "endfor", "endset", "endmacro", "endcall", "else", "elif",
                                             "endgeneration"};
    for (const char* e : known_ends)
      if (name == e) error(tag, "unexpected '{% " + name + " %}' with no open block it could close");
    error(tag, "unsupported statement '{% " + name + " %}' (supported: if, for, set, macro, call, break, continue, "
               "generation)");
  }

  StmtPtr parse_if(const Token& tag) {
    auto s = make_stmt(Stmt::Type::if_block, tag);
    ExprPtr condition = parse_expression();
    expect_block_end("if");
    while (true) {
      std::string end;
      Body body = parse_body({"elif", "else", "endif"}, end);
      s->branches.emplace_back(std::move(condition), std::move(body));
      if (end == "elif") {
        condition = parse_expression();
        expect_block_end("elif");
      } else if (end == "else") {
        expect_block_end("else");
        std::string end2;
        Body else_body = parse_body({"endif"}, end2);
        s->branches.emplace_back(nullptr, std::move(else_body));
        expect_block_end("endif");
        return s;
      } else {
        expect_block_end("endif");
        return s;
      }
    }
  }

  StmtPtr parse_for(const Token& tag) {
    auto s = make_stmt(Stmt::Type::for_loop, tag);
    s->targets.push_back(expect_name("a loop variable name"));
    while (at_op(",")) {
      next();
      s->targets.push_back(expect_name("a loop variable name"));
    }
    if (!at_name("in")) error(peek(), "expected 'in' in the for loop, found " + describe(peek()));
    next();
    // The iterable may not contain an inline if: `if` here starts the loop filter.
    s->expr = parse_or();
    if (at_name("if")) {
      next();
      s->filter = parse_expression();
    }
    if (at_name("recursive")) error(peek(), "recursive for loops are not supported");
    expect_block_end("for");
    ++loop_depth_;
    std::string end;
    s->body = parse_body({"else", "endfor"}, end);
    --loop_depth_;
    if (end == "else") {
      expect_block_end("else");
      std::string end2;
      s->else_body = parse_body({"endfor"}, end2);
    }
    expect_block_end("endfor");
    return s;
  }

  StmtPtr parse_set(const Token& tag) {
    auto s = make_stmt(Stmt::Type::set, tag);
    s->targets.push_back(expect_name("a variable name after 'set'"));
    if (at_op(".")) {
      next();
      s->attribute = expect_name("an attribute name");
    } else {
      while (at_op(",")) {
        next();
        s->targets.push_back(expect_name("a variable name"));
      }
    }
    if (peek().type == TokenType::block_end && s->targets.size() == 1 && s->attribute.empty()) {
      next();
      s->type = Stmt::Type::set_block;
      std::string end;
      s->body = parse_body({"endset"}, end);
      expect_block_end("endset");
      return s;
    }
    expect_op("=");
    s->expr = parse_tuple_or_expression();
    expect_block_end("set");
    return s;
  }

  StmtPtr parse_macro(const Token& tag) {
    auto s = make_stmt(Stmt::Type::macro, tag);
    s->name = expect_name("a macro name");
    expect_op("(");
    while (!at_op(")")) {
      std::string param = expect_name("a parameter name");
      ExprPtr default_value;
      if (at_op("=")) {
        next();
        default_value = parse_expression();
      }
      s->params.emplace_back(param, std::move(default_value));
      if (!at_op(")")) expect_op(",");
    }
    next();
    expect_block_end("macro");
    std::string end;
    int saved_depth = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_body({"endmacro"}, end);
    loop_depth_ = saved_depth;
    expect_block_end("endmacro");
    return s;
  }

  StmtPtr parse_call_block(const Token& tag) {
    auto s = make_stmt(Stmt::Type::call_block, tag);
    if (at_op("(")) error(peek(), "call blocks with caller arguments are not supported");
    s->expr = parse_expression();
    if (s->expr->type != Expr::Type::call) error(tag, "expected a macro call after '{% call'");
    expect_block_end("call");
    std::string end;
    s->body = parse_body({"endcall"}, end);
    expect_block_end("endcall");
    return s;
  }

  // ---- expressions, with jinja2's precedence ----

  ExprPtr make_expr(Expr::Type type, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->type = type;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  ExprPtr binary(const Token& at, const std::string& op, ExprPtr a, ExprPtr b) {
    auto e = make_expr(Expr::Type::binary, at);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return nested(std::move(e));
  }

  // `a, b` on the right of a set makes a tuple.
  ExprPtr parse_tuple_or_expression() {
    const Token& at = peek();
    ExprPtr first = parse_expression();
    if (!at_op(",")) return first;
    auto list = make_expr(Expr::Type::list, at);
    list->args.push_back(std::move(first));
    while (at_op(",")) {
      next();
      if (peek().type == TokenType::block_end) break;
      list->args.push_back(parse_expression());
    }
    return nested(std::move(list));
  }

  ExprPtr parse_expression() {
    RecursionGuard guard(*this);
    const Token& at = peek();
    ExprPtr value = parse_or();
    while (at_name("if")) {
      next();
      auto e = make_expr(Expr::Type::condition, at);
      e->args.push_back(std::move(value));
      e->args.push_back(parse_or());
      if (at_name("else")) {
        next();
        e->args.push_back(parse_expression());
      } else {
        e->args.push_back(nullptr);
      }
      value = nested(std::move(e));
    }
    return value;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      const Token& at = next();
      left = binary(at, "or", std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      const Token& at = next();
      left = binary(at, "and", std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      RecursionGuard guard(*this);
      const Token& at = next();
      auto e = make_expr(Expr::Type::unary, at);
      e->name = "not";
      e->args.push_back(parse_not());
      return nested(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& start = peek();
    ExprPtr first = parse_add();
    ExprPtr chain;
    while (true) {
      std::string op;
      const Token& at = peek();
      if (at.type == TokenType::op &&
          (at.value == "==" || at.value == "!=" || at.value == "<" || at.value == "<=" || at.value == ">" ||
           at.value == ">=")) {
        op = at.value;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && at_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!chain) {
        chain = make_expr(Expr::Type::compare, start);
        chain->args.push_back(std::move(first));
      }
      chain->ops.push_back(op);
      chain->args.push_back(parse_add());
      chain = nested(std::move(chain));
    }
    return chain ? std::move(chain) : std::move(first);
  }

  ExprPtr parse_add() {
    ExprPtr left = parse_concat();
    while (at_op("+") || at_op("-")) {
      const Token& at = next();
      left = binary(at, at.value, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_mul();
    while (at_op("~")) {
      const Token& at = next();
      left = binary(at, "~", std::move(left), parse_mul());
    }
    return left;
  }

  ExprPtr parse_mul() {
    ExprPtr left = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token& at = next();
      left = binary(at, at.value, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (at_op("**")) {
      const Token& at = next();
      left = binary(at, "**", std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      RecursionGuard guard(*this);
      const Token& at = next();
      node = make_expr(Expr::Type::unary, at);
      node->name = at.value;
      node->args.push_back(parse_unary(false));
      node = nested(std::move(node));
    } else {
      node = parse_postfix(parse_primary());
    }
    if (with_filter) return parse_filters_and_tests(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case TokenType::string: {
        auto e = make_expr(Expr::Type::literal, t);
        std::string s;
        while (peek().type == TokenType::string) s += next().value;  // adjacent literals join
        e->value = Value::string(s);
        return e;
      }
      case TokenType::integer: {
        next();
        auto e = make_expr(Expr::Type::literal, t);
        e->value = Value::integer(std::strtoll(t.value.c_str(), nullptr, 10));
        return e;
      }
      case TokenType::floating: {
        next();
        auto e = make_expr(Expr::Type::literal, t);
        e->value = Value::floating(std::strtod(t.value.c_str(), nullptr));
        return e;
      }
      case TokenType::name: {
        next();
        auto e = make_expr(Expr::Type::literal, t);
        if (t.value == "true" || t.value == "True") e->value = Value::boolean(true);
        else if (t.value == "false" || t.value == "False") e->value = Value::boolean(false);
        else if (t.value == "none" || t.value == "None") e->value = Value::none();
        else {
          e->type = Expr::Type::name;
          e->name = t.value;
        }
        return e;
      }
      case TokenType::op:
        if (t.value == "(") {
          next();
          if (at_op(")")) {
            next();
            return make_expr(Expr::Type::list, t);
          }
          ExprPtr inner = parse_expression();
          if (at_op(",")) {
            auto list = make_expr(Expr::Type::list, t);
            list->args.push_back(std::move(inner));
            while (at_op(",")) {
              next();
              if (at_op(")")) break;
              list->args.push_back(parse_expression());
            }
            inner = nested(std::move(list));
          }
          expect_op(")");
          return inner;
        }
        if (t.value == "[") {
          next();
          auto list = make_expr(Expr::Type::list, t);
          while (!at_op("]")) {
            list->args.push_back(parse_expression());
            if (!at_op("]")) expect_op(",");
          }
          next();
          return nested(std::move(list));
        }
        if (t.value == "{") {
          next();
          auto dict = make_expr(Expr::Type::dict, t);
          while (!at_op("}")) {
            dict->args.push_back(parse_expression());
            expect_op(":");
            dict->args.push_back(parse_expression());
            if (!at_op("}")) expect_op(",");
          }
          next();
          return nested(std::move(dict));
        }
        break;
      default: break;
    }
    error(t, "expected an expression, found " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      const Token& at = peek();
      if (at_op(".")) {
        next();
        auto e = make_expr(Expr::Type::attribute, at);
        if (peek().type == TokenType::integer) {
          // `x.0` is x[0] in jinja2
          e->type = Expr::Type::subscript;
          e->args.push_back(std::move(node));
          auto index = make_expr(Expr::Type::literal, peek());
          index->value = Value::integer(std::strtoll(next().value.c_str(), nullptr, 10));
          e->args.push_back(std::move(index));
        } else {
          e->name = expect_name("an attribute name after '.'");
          e->args.push_back(std::move(node));
        }
        node = nested(std::move(e));
      } else if (at_op("[")) {
        next();
        node = nested(parse_subscript(at, std::move(node)));
      } else if (at_op("(")) {
        next();
        auto e = make_expr(Expr::Type::call, at);
        e->args.push_back(std::move(node));
        parse_call_args(*e);
        node = nested(std::move(e));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(const Token& at, ExprPtr object) {
    ExprPtr parts[3];
    int part = 0;
    bool is_slice = false;
    while (!at_op("]")) {
      if (at_op(":")) {
        next();
        is_slice = true;
        if (++part > 2) error(peek(), "a slice takes at most three parts");
        continue;
      }
      if (parts[part]) error(peek(), "expected ':' or ']' in a subscript, found " + describe(peek()));
      parts[part] = parse_expression();
    }
    next();
    auto e = make_expr(is_slice ? Expr::Type::slice : Expr::Type::subscript, at);
    e->args.push_back(std::move(object));
    if (!is_slice && !parts[0]) error(at, "empty subscript '[]'");
    e->args.push_back(std::move(parts[0]));
    if (is_slice) {
      e->args.push_back(std::move(parts[1]));
      e->args.push_back(std::move(parts[2]));
    }
    return e;
  }

  // After '(' : positional and keyword arguments up to ')'.
  void parse_call_args(Expr& call) {
    while (!at_op(")")) {
      if (peek().type == TokenType::name && at_op("=", 1)) {
        std::string key = next().value;
        next();
        call.keyword.emplace_back(key, parse_expression());
      } else {
        if (!call.keyword.empty()) error(peek(), "positional argument after a keyword argument");
        call.args.push_back(parse_expression());
      }
      if (!at_op(")")) expect_op(",");
    }
    next();
  }

  ExprPtr parse_filters_and_tests(ExprPtr node) {
    while (true) {
      const Token& at = peek();
      if (at_op("|")) {
        next();
        auto e = make_expr(Expr::Type::filter, at);
        e->name = expect_name("a filter name after '|'");
        e->args.push_back(std::move(node));
        if (at_op("(")) {
          next();
          parse_call_args(*e);
        }
        node = nested(std::move(e));
      } else if (at_name("is")) {
        next();
        auto e = make_expr(Expr::Type::test, at);
        if (at_name("not")) {
          next();
          e->negated = true;
        }
        e->name = expect_name("a test name after 'is'");
        e->args.push_back(std::move(node));
        if (at_op("(")) {
          next();
          parse_call_args(*e);
        } else {
          const Token& t = peek();
          bool starts_argument = t.type == TokenType::string || t.type == TokenType::integer ||
                                 t.type == TokenType::floating || at_op("[") || at_op("{") ||
                                 (t.type == TokenType::name && !at_name("else") && !at_name("or") &&
                                  !at_name("and") && !at_name("if") && !at_name("in") && !at_name("is") &&
                                  !at_name("not") && !at_name("recursive"));
          if (starts_argument) e->args.push_back(parse_postfix(parse_primary()));
        }
        node = nested(std::move(e));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  int recursion_ = 0;
};

}  // namespace

Body parse(const std::string& source) { return Parser(lex(source)).parse_template(); }

}  // namespace nibble::jinja
