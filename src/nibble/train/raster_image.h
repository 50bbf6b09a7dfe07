// An RGB canvas with the few drawing operations a line chart needs: rectangles, anti-aliased
// thick lines, and text in the built-in bitmap font (bitmap_font.h) at an integer scale.
// Coordinates are pixels, x to the right and y down, pixel (x, y) covering [x, x+1) x [y, y+1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nibble {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

class RasterImage {
 public:
  RasterImage(int width, int height, Rgb background);

  int width() const { return width_; }
  int height() const { return height_; }
  Rgb pixel(int x, int y) const;
  const std::vector<uint8_t>& rgb() const { return pixels_; }  // rows top first, 3 bytes a pixel

  // `coverage` in [0, 1] of `color` over what is there; outside the image does nothing.
  void blend(int x, int y, Rgb color, double coverage);
  void fill_rect(int x0, int y0, int x1, int y1, Rgb color);  // [x0, x1) x [y0, y1)
  void rect_outline(int x0, int y0, int x1, int y1, Rgb color);
  // A segment between pixel-centre coordinates, `width` pixels wide, edges anti-aliased by the
  // distance of each pixel centre to the segment.
  void line(double x0, double y0, double x1, double y1, double width, Rgb color);
  void disc(double cx, double cy, double radius, Rgb color);

  // Text with its top-left corner at (x, y); each font pixel a scale x scale square, one empty
  // column between glyphs. `vertical`: rotated a quarter turn to read bottom to top, (x, y) the
  // bottom-left corner.
  void text(int x, int y, std::string_view text, int scale, Rgb color, bool vertical = false);

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;
};

// Size of `text` drawn at `scale`, along the line (width) and across it (height).
int text_width(std::string_view text, int scale);
int text_height(int scale);

}  // namespace nibble
