// A parsed Jinja template and its renderer: nibble's interpreter for the subset of Jinja that
// Hugging Face chat templates use, with jinja2's semantics under transformers' settings
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "nibble/text/jinja_ast.h"
#include "nibble/text/jinja_value.h"

namespace nibble::jinja {

class Template {
 public:
  // Parses `source`; a syntax error is a nibble::Error naming the line and column.
  explicit Template(const std::string& source);

  // Renders with `variables` as the template's globals, on top of the built-in globals
  // (range, namespace, dict, raise_exception, strftime_now). raise_exception(msg) fails with a
  // nibble::Error whose message ends with msg.
  std::string render(const Dict& variables, const Limits& limits = {}) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace nibble::jinja
