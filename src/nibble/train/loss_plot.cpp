#include "nibble/train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/io/atomic_file.h"
#include "nibble/train/png_writer.h"

namespace nibble {

namespace {

// matplotlib's "tab10" colours: distinct, and familiar from the peer's plots.
const Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
const Rgb kWhite{255, 255, 255};
const Rgb kInk{30, 30, 30};
const Rgb kFrame{90, 90, 90};
const Rgb kGrid{228, 228, 228};
constexpr int kTextScale = 2;
constexpr int kTitleScale = 3;
constexpr int kTickLength = 5;
constexpr double kLineWidth = 2.0;

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  NIBBLE_ASSERT(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && target > 0);
  double span = hi - lo;
  if (span <= 0) span = std::max(std::fabs(lo), 1.0);
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalized = raw / magnitude;
  const double step = (normalized < 1.5 ? 1.0 : normalized < 3.0 ? 2.0 : normalized < 7.0 ? 5.0 : 10.0) * magnitude;
  std::vector<double> ticks;
  // Integer multiples of the step, so 0.1 * 3 is the tick and not an accumulated 0.30000000000000004.
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1.0) ticks.push_back(k * step);
  return ticks;
}

std::string format_tick(double value, double step) {
  if (std::fabs(value) < std::fabs(step) * 1e-9) value = 0.0;  // no "-0"
  const int decimals = step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return fmt::format("{:.{}f}", value, decimals);
}

RasterImage render_line_chart(const std::vector<PlotSeries>& series, const PlotOptions& options) {
  Range xr, yr;
  for (const PlotSeries& s : series) {
    NIBBLE_CHECK(s.x.size() == s.y.size(), "plot series '{}' has {} x values and {} y values", s.name, s.x.size(),
                 s.y.size());
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xr.add(s.x[i]);
      yr.add(s.y[i]);
    }
  }
  NIBBLE_CHECK(!xr.empty(), "nothing to plot: no series has a finite point");
  if (xr.hi == xr.lo) {
    xr.lo -= 0.5;
    xr.hi += 0.5;
  }
  const double pad = yr.hi > yr.lo ? 0.05 * (yr.hi - yr.lo) : std::max(0.05 * std::fabs(yr.lo), 0.5);
  yr.lo -= pad;
  yr.hi += pad;
  const std::vector<double> xticks = nice_ticks(xr.lo, xr.hi, 8);
  const std::vector<double> yticks = nice_ticks(yr.lo, yr.hi, 6);
  const double xstep = xticks.size() > 1 ? xticks[1] - xticks[0] : 1.0;
  const double ystep = yticks.size() > 1 ? yticks[1] - yticks[0] : 1.0;

  int ylabel_width = 0;
  for (double t : yticks) ylabel_width = std::max(ylabel_width, text_width(format_tick(t, ystep), kTextScale));
  const int gap = 8;
  const int left = 16 + text_height(kTextScale) + 12 + ylabel_width + gap + kTickLength;
  const int right = options.width - 24;
  const int top = 16 + text_height(kTitleScale) + 16;
  const int bottom = options.height - (16 + text_height(kTextScale) + 10 + text_height(kTextScale) + gap + kTickLength);
  NIBBLE_CHECK(right - left >= 50 && bottom - top >= 50, "chart size {}x{} is too small", options.width,
               options.height);

  RasterImage image(options.width, options.height, kWhite);
  auto px = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - yr.lo) / (yr.hi - yr.lo) * (bottom - top); };

  // Grid and ticks.
  for (double t : xticks) {
    const int x = static_cast<int>(std::lround(px(t)));
    image.fill_rect(x, top, x + 1, bottom, kGrid);
    image.fill_rect(x, bottom, x + 1, bottom + kTickLength, kFrame);
    const std::string label = format_tick(t, xstep);
    image.text(x - text_width(label, kTextScale) / 2, bottom + kTickLength + gap, label, kTextScale, kInk);
  }
  for (double t : yticks) {
    const int y = static_cast<int>(std::lround(py(t)));
    image.fill_rect(left, y, right, y + 1, kGrid);
    image.fill_rect(left - kTickLength, y, left, y + 1, kFrame);
    const std::string label = format_tick(t, ystep);
    image.text(left - kTickLength - gap - text_width(label, kTextScale), y - text_height(kTextScale) / 2, label,
               kTextScale, kInk);
  }

  // The series, clipped to the frame by construction (the ranges hold every finite point).
  for (size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& s = series[k];
    const Rgb color = kPalette[k % std::size(kPalette)];
    bool have_previous = false;
    double prev_x = 0, prev_y = 0;
    int points = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        have_previous = false;
        continue;
      }
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (have_previous) image.line(prev_x, prev_y, x, y, kLineWidth, color);
      prev_x = x;
      prev_y = y;
      have_previous = true;
      ++points;
    }
    if (points == 1) image.disc(prev_x, prev_y, 3.0, color);
  }
  image.rect_outline(left, top, right + 1, bottom + 1, kFrame);

  // Title, axis labels, legend.
  image.text((options.width - text_width(options.title, kTitleScale)) / 2, 16, options.title, kTitleScale, kInk);
  image.text((left + right - text_width(options.x_label, kTextScale)) / 2,
             options.height - 16 - text_height(kTextScale), options.x_label, kTextScale, kInk);
  image.text(16, (top + bottom + text_width(options.y_label, kTextScale)) / 2, options.y_label, kTextScale, kInk,
             /*vertical=*/true);
  if (!series.empty()) {
    const int swatch = 24, row = text_height(kTextScale) + 8, padding = 10;
    int name_width = 0;
    for (const PlotSeries& s : series) name_width = std::max(name_width, text_width(s.name, kTextScale));
    const int box_w = padding + swatch + gap + name_width + padding;
    const int box_h = padding + row * static_cast<int>(series.size()) - 8 + padding;
    const int bx = right - 12 - box_w, by = top + 12;
    image.fill_rect(bx, by, bx + box_w, by + box_h, kWhite);
    image.rect_outline(bx, by, bx + box_w, by + box_h, kFrame);
    for (size_t k = 0; k < series.size(); ++k) {
      const int y = by + padding + row * static_cast<int>(k);
      const double mid = y + text_height(kTextScale) / 2.0 - 0.5;
      image.line(bx + padding, mid, bx + padding + swatch, mid, 3.0, kPalette[k % std::size(kPalette)]);
      image.text(bx + padding + swatch + gap, y, series[k].name, kTextScale, kInk);
    }
  }
  return image;
}

void write_line_chart_png(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options) {
  const RasterImage image = render_line_chart(series, options);
  const std::vector<uint8_t> png = encode_png_rgb(image.rgb().data(), image.width(), image.height());
  write_file_atomically(path, std::string(png.begin(), png.end()));
}

PlotSeries metrics_series(const std::vector<nlohmann::ordered_json>& records, const std::string& name,
                          const std::string& x_key, const std::string& y_key) {
  PlotSeries s;
  s.name = name;
  for (const auto& r : records) {
    if (!r.is_object() || !r.contains(x_key) || !r.contains(y_key)) continue;
    const auto& x = r.at(x_key);
    const auto& y = r.at(y_key);
    if (!x.is_number() || !(y.is_number() || y.is_null())) continue;
    s.x.push_back(x.get<double>());
    s.y.push_back(y.is_null() ? std::numeric_limits<double>::quiet_NaN() : y.get<double>());
  }
  return s;
}

}  // namespace nibble
