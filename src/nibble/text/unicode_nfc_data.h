// Unicode tables for canonical normalization (NFC/NFD), generated into unicode_nfc_data.cpp by
// unicode_gen_nfc.py from Python's unicodedata. Every table is sorted by its first field.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nibble::unicode_data {

struct CombiningClass {
  char32_t cp;
  uint8_t ccc;
};

// The full canonical decomposition of cp is kDecompositionPool[offset, offset + length).
struct Decomposition {
  char32_t cp;
  uint32_t offset;
  uint32_t length;
};

struct Composition {
  char32_t first;
  char32_t second;
  char32_t composite;
};

extern const char* const kUnicodeVersion;
extern const CombiningClass kCombiningClasses[];
extern const size_t kCombiningClassCount;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;
extern const char32_t kDecompositionPool[];
extern const Composition kCompositions[];
extern const size_t kCompositionCount;

}  // namespace nibble::unicode_data
