// Errors: one exception type whose message says what was wrong, where (file, tensor, line) and
// what was expected. Library code never aborts or exits on bad input; it throws nibble::Error.
// Asserts (NIBBLE_ASSERT) are for our own bugs only.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace nibble {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown when the GPU runs out of memory, so callers can say which option would fit.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// Builds the message with fmt and throws nibble::Error.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Prefixes an error's message with context ("reading model.safetensors: ...") and rethrows it.
[[noreturn]] void rethrow_with_context(const std::string& context);

}  // namespace nibble

// NIBBLE_CHECK(cond, "fmt", args...): bad input -> nibble::Error with the formatted message.
#define NIBBLE_CHECK(cond, ...)                         \
  do {                                                  \
    if (!(cond)) ::nibble::fail(__VA_ARGS__);           \
  } while (0)

// NIBBLE_ASSERT(cond): an internal invariant. A failure is our bug; it still throws (never aborts)
// and names the source line so the report is useful.
#define NIBBLE_ASSERT(cond)                                                                 \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ::nibble::fail("internal error: {} failed at {}:{}", #cond, __FILE__, __LINE__);      \
  } while (0)
