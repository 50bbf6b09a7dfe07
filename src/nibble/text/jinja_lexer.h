// Splits a Jinja template into tokens the way jinja2's lexer does with transformers' settings
// (trim_blocks=True, lstrip_blocks=True): whitespace control ({%- -%}, {%+ +%}) is applied here,
// so the parser only ever sees text that is printed as it is.
#pragma once

#include <string>
#include <vector>

namespace nibble::jinja {

enum class TokenType {
  text,         // template data, printed verbatim
  output_begin, // {{
  output_end,   // }}
  block_begin,  // {%
  block_end,    // %}
  name,
  string,       // value holds the decoded string
  integer,
  floating,
  op,           // punctuation and operators: + - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { }
  end_of_input,
};

struct Token {
  TokenType type;
  std::string value;
  int line = 1;
  int column = 1;
};

std::vector<Token> lex(const std::string& source);

}  // namespace nibble::jinja
