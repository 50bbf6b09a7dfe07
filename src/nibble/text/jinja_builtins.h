// Jinja's filters and tests, and the Python methods of str, dict and list that templates call.
// Shared by the evaluator; every failure is a nibble::Error naming the template line.
#pragma once

#include <functional>
#include <string>

#include "nibble/text/jinja_value.h"

namespace nibble::jinja {

// Python's iteration: a list's items, a dict's keys, a string's characters; undefined yields
// nothing. Anything else is an error naming `line`, and so is a string of more characters than
// limits->max_loop_iterations (each becomes a value of its own).
List iterate(const Value& v, int line, const Limits* limits = nullptr);

// Applies filter `name` (e.g. "trim", "tojson") to `input`.
Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);

// Evaluates test `name` ("defined", "divisibleby", ...) on `input`.
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);

// The bound method `name` of a string, dict or list, as a callable value; undefined when the type
// has no such method.
Value find_method(const Value& object, const std::string& name);

}  // namespace nibble::jinja
