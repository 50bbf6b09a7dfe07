#include "nibble/train/raster_image.h"

#include <algorithm>
#include <cmath>

#include "nibble/core/error.h"
#include "nibble/train/bitmap_font.h"

namespace nibble {

RasterImage::RasterImage(int width, int height, Rgb background) : width_(width), height_(height) {
  NIBBLE_CHECK(width > 0 && height > 0 && width <= 16384 && height <= 16384,
               "image size {}x{}: expected 1..16384 pixels each way", width, height);
  pixels_.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = background.r;
    pixels_[i + 1] = background.g;
    pixels_[i + 2] = background.b;
  }
}

Rgb RasterImage::pixel(int x, int y) const {
  NIBBLE_ASSERT(x >= 0 && y >= 0 && x < width_ && y < height_);
  const uint8_t* p = &pixels_[(static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3];
  return Rgb{p[0], p[1], p[2]};
}

void RasterImage::blend(int x, int y, Rgb color, double coverage) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_ || !(coverage > 0.0)) return;
  coverage = std::min(coverage, 1.0);
  uint8_t* p = &pixels_[(static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3];
  const uint8_t target[3] = {color.r, color.g, color.b};
  for (int c = 0; c < 3; ++c)
    p[c] = static_cast<uint8_t>(std::lround(p[c] + (static_cast<double>(target[c]) - p[c]) * coverage));
}

void RasterImage::fill_rect(int x0, int y0, int x1, int y1, Rgb color) {
  for (int y = std::max(y0, 0); y < std::min(y1, height_); ++y)
    for (int x = std::max(x0, 0); x < std::min(x1, width_); ++x) blend(x, y, color, 1.0);
}

void RasterImage::rect_outline(int x0, int y0, int x1, int y1, Rgb color) {
  fill_rect(x0, y0, x1, y0 + 1, color);
  fill_rect(x0, y1 - 1, x1, y1, color);
  fill_rect(x0, y0, x0 + 1, y1, color);
  fill_rect(x1 - 1, y0, x1, y1, color);
}

void RasterImage::line(double x0, double y0, double x1, double y1, double width, Rgb color) {
  const double half = width / 2.0;
  const double dx = x1 - x0, dy = y1 - y0;
  const double length_sq = dx * dx + dy * dy;
  const int left = static_cast<int>(std::floor(std::min(x0, x1) - half - 1));
  const int right = static_cast<int>(std::ceil(std::max(x0, x1) + half + 1));
  const int top = static_cast<int>(std::floor(std::min(y0, y1) - half - 1));
  const int bottom = static_cast<int>(std::ceil(std::max(y0, y1) + half + 1));
  for (int y = std::max(top, 0); y <= std::min(bottom, height_ - 1); ++y) {
    for (int x = std::max(left, 0); x <= std::min(right, width_ - 1); ++x) {
      // Distance from the pixel to the segment; coverage falls from 1 to 0 over one pixel at
      // the edge, which is what makes the line smooth.
      double t = length_sq > 0 ? ((x - x0) * dx + (y - y0) * dy) / length_sq : 0.0;
      t = std::clamp(t, 0.0, 1.0);
      const double ex = x - (x0 + t * dx), ey = y - (y0 + t * dy);
      const double distance = std::sqrt(ex * ex + ey * ey);
      blend(x, y, color, std::clamp(half + 0.5 - distance, 0.0, 1.0));
    }
  }
}

void RasterImage::disc(double cx, double cy, double radius, Rgb color) { line(cx, cy, cx, cy, 2 * radius, color); }

void RasterImage::text(int x, int y, std::string_view text, int scale, Rgb color, bool vertical) {
  int pen = 0;
  for (char c : text) {
    const Glyph& g = font_glyph(c);
    for (int gy = 0; gy < kGlyphHeight; ++gy) {
      for (int gx = 0; gx < kGlyphWidth; ++gx) {
        if (!g.pixel(gx, gy)) continue;
        // Along the text: pen + gx; across: gy. Vertical text runs up from (x, y).
        const int u = (pen + gx) * scale, v = gy * scale;
        if (vertical) fill_rect(x + v, y - u - scale, x + v + scale, y - u, color);
        else fill_rect(x + u, y + v, x + u + scale, y + v + scale, color);
      }
    }
    pen += kGlyphWidth + 1;
  }
}

int text_width(std::string_view text, int scale) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * (kGlyphWidth + 1) - 1) * scale;
}

int text_height(int scale) { return kGlyphHeight * scale; }

}  // namespace nibble
