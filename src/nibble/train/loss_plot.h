// The loss-curve image `nibble train` leaves in its output folder, and the comparison chart of
// nibble against a peer run (bench/train/plot_loss): one or more named series of (step, value)
// as lines on shared axes, with round-number ticks, a grid, a legend and a title, written as PNG
// by the built-in encoder (png_writer.h). Non-finite values break a line rather than end it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/train/raster_image.h"

namespace nibble {

struct PlotSeries {
  std::string name;
  std::vector<double> x;  // steps
  std::vector<double> y;  // same length
};

struct PlotOptions {
  std::string title = "training loss";
  std::string x_label = "step";
  std::string y_label = "loss";
  int width = 1000;
  int height = 600;
};

// Draws the chart. Throws nibble::Error when no series has a finite point or x and y differ in
// length.
RasterImage render_line_chart(const std::vector<PlotSeries>& series, const PlotOptions& options);
// render_line_chart, encoded as PNG and written atomically to `path`.
void write_line_chart_png(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options);

// The (x_key, y_key) pairs of the records that have both as numbers (or y null: a gap), in
// order: loss lines and eval lines of one metrics log become separate series this way.
PlotSeries metrics_series(const std::vector<nlohmann::ordered_json>& records, const std::string& name,
                          const std::string& x_key, const std::string& y_key);

// Round-number axis ticks covering [lo, hi]: about `target` multiples of 1, 2 or 5 x 10^k.
std::vector<double> nice_ticks(double lo, double hi, int target);
// A tick value as text with just enough decimals for the tick step: 0.25 -> "0.25", 1000 -> "1000".
std::string format_tick(double value, double step);

}  // namespace nibble
