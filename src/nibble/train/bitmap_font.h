// A 5x8 pixel font for printable ASCII, drawn for nibble's charts (no font files, no
// libraries): capitals and digits 7 rows high, the 8th row for the descenders of g, j, p, q, y.
#pragma once

#include <cstdint>

namespace nibble {

constexpr int kGlyphWidth = 5;
constexpr int kGlyphHeight = 8;

// Rows top to bottom; bit 4 of a row is the leftmost pixel. Characters outside ' '..'~' get '?'.
struct Glyph {
  uint8_t rows[kGlyphHeight];
  bool pixel(int x, int y) const { return (rows[y] >> (kGlyphWidth - 1 - x)) & 1; }
};

const Glyph& font_glyph(char c);

}  // namespace nibble
