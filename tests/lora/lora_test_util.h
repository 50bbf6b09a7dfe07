// Shared by the lora tests: a small model shape and error capture.
#pragma once

#include <string>

#include "nibble/core/error.h"
#include "nibble/model/model_shape.h"

namespace nibble::test {

// GQA like Llama 3 (4 heads, 2 kv heads) so q/k/v/o and the MLP all have different shapes.
inline ModelShape small_shape() {
  ModelShape s;
  s.name = "small";
  s.hidden = 64;
  s.intermediate = 96;
  s.layers = 2;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 16;
  s.vocab = 64;
  return s;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace nibble::test
