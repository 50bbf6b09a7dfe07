#include "nibble/core/error.h"

#include <exception>

namespace nibble {

void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const OutOfMemoryError& e) {
    throw OutOfMemoryError(context + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace nibble
