// Parses Jinja tokens into statements. A syntax error or a construct this interpreter does not
// implement is a nibble::Error naming the template line and column and what was expected.
#pragma once

#include <string>

#include "nibble/text/jinja_ast.h"

namespace nibble::jinja {

Body parse(const std::string& source);

}  // namespace nibble::jinja
