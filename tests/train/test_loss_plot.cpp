#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "nibble/train/loss_plot.h"
#include "nibble/train/png_writer.h"
#include "png_test_util.h"
#include "train_test_util.h"

namespace nibble {
namespace {

using Json = nlohmann::ordered_json;

const Rgb kBlue{31, 119, 180};    // the first series' colour
const Rgb kOrange{255, 127, 14};  // the second's

int colour_distance(Rgb a, Rgb b) { return std::abs(a.r - b.r) + std::abs(a.g - b.g) + std::abs(a.b - b.b); }

// Pixels within `radius` of (x, y) close to `colour`.
int near(const RasterImage& image, int x, int y, int radius, Rgb colour) {
  int n = 0;
  for (int dy = -radius; dy <= radius; ++dy)
    for (int dx = -radius; dx <= radius; ++dx)
      if (colour_distance(image.pixel(x + dx, y + dy), colour) < 40) ++n;
  return n;
}

int dark_pixels(const RasterImage& image, int x0, int y0, int x1, int y1) {
  int n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      if (image.pixel(x, y).r < 100 && image.pixel(x, y).g < 100 && image.pixel(x, y).b < 100) ++n;
  return n;
}

TEST(LossPlot, NiceTicksAreRoundMultiples) {
  EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0}));
  const std::vector<double> loss = nice_ticks(1.93, 2.61, 6);
  ASSERT_EQ(loss.size(), 7u);  // steps of 0.1
  EXPECT_DOUBLE_EQ(loss.front(), 2.0);
  EXPECT_DOUBLE_EQ(loss.back(), 2.6);
  EXPECT_EQ(nice_ticks(0, 1000, 8).size(), 11u);  // steps of 100
  EXPECT_EQ(nice_ticks(5, 5, 6), (std::vector<double>{5}));  // a flat range still gets its tick
  EXPECT_EQ(format_tick(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
  EXPECT_EQ(format_tick(1000, 100), "1000");
  EXPECT_EQ(format_tick(-1e-17, 0.1), "0.0");
}

TEST(LossPlot, DrawsEachSeriesInItsColourWithGapsAtNonFiniteValues) {
  PlotSeries a{"nibble", {}, {}}, b{"peft", {}, {}};
  for (int step = 0; step <= 100; ++step) {
    a.x.push_back(step);
    a.y.push_back(3.0 - 2.0 * step / 100.0);
    b.x.push_back(step);
    b.y.push_back(step >= 40 && step <= 60 ? std::numeric_limits<double>::quiet_NaN() : 1.0 + step / 100.0);
  }
  PlotOptions options;
  const RasterImage image = render_line_chart({a, b}, options);
  ASSERT_EQ(image.width(), 1000);
  ASSERT_EQ(image.height(), 600);
  // Locate the plot frame from the data: series a runs from (0, 3) to (100, 1), the y range is
  // [1, 3] padded by 5%; find where the blue line crosses the middle column instead of repeating
  // the layout arithmetic, then check the colours along both lines.
  int blue_rows = 0, orange_in_gap = 0, orange_outside = 0;
  for (int x = 100; x < 950; ++x) {
    for (int y = 60; y < 540; ++y) {
      const Rgb p = image.pixel(x, y);
      if (colour_distance(p, kBlue) < 40) ++blue_rows;
      if (colour_distance(p, kOrange) < 40) (x > 460 && x < 520 ? orange_in_gap : orange_outside)++;
    }
  }
  EXPECT_GT(blue_rows, 800);       // a 2-pixel line across ~850 columns
  EXPECT_GT(orange_outside, 500);
  // The NaN run (steps 40..60) sits around the middle of the x axis: no orange line there.
  EXPECT_EQ(orange_in_gap, 0);
  // Text: title at the top centre, a legend with both names at the top right.
  EXPECT_GT(dark_pixels(image, 350, 0, 650, 50), 100);
  EXPECT_GT(near(image, 900, 75, 40, kBlue) + near(image, 900, 95, 40, kOrange), 20);
  EXPECT_GT(dark_pixels(image, 780, 60, 990, 130), 100);
}

TEST(LossPlot, RejectsNothingToDrawAndMismatchedSeries) {
  PlotOptions options;
  test::expect_error([&] { render_line_chart({}, options); }, {"nothing to plot"});
  PlotSeries nan{"x", {1.0}, {std::numeric_limits<double>::quiet_NaN()}};
  test::expect_error([&] { render_line_chart({nan}, options); }, {"nothing to plot"});
  PlotSeries bad{"bad", {1.0, 2.0}, {1.0}};
  test::expect_error([&] { render_line_chart({bad}, options); }, {"'bad'", "2 x values and 1 y values"});
  // One point is a dot, not an error.
  PlotSeries one{"one", {5.0}, {2.0}};
  EXPECT_NO_THROW(render_line_chart({one}, options));
}

TEST(LossPlot, SeriesFromMetricsRecords) {
  const std::vector<Json> records = {
      Json{{"step", 1}, {"loss", 2.0}},      Json{{"step", 2}, {"loss", nullptr}},
      Json{{"step", 2}, {"eval_loss", 1.9}}, Json{{"step", 3}, {"loss", 1.5}},
      Json{{"epoch", 1}, {"loss", 9.0}},     Json{{"step", "4"}, {"loss", 1.0}},
  };
  const PlotSeries train = metrics_series(records, "train", "step", "loss");
  EXPECT_EQ(train.x, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(train.y[0], 2.0);
  EXPECT_TRUE(std::isnan(train.y[1]));
  const PlotSeries eval = metrics_series(records, "eval", "step", "eval_loss");
  EXPECT_EQ(eval.x, (std::vector<double>{2}));
}

TEST(LossPlot, WritesAPngThatDecodesToTheImage) {
  test::ScratchDir dir;
  PlotSeries s{"loss", {1, 2, 3, 4}, {2.0, 1.5, 1.2, 1.1}};
  PlotOptions options;
  options.width = 320;
  options.height = 200;
  write_line_chart_png(dir / "loss.png", {s}, options);
  const std::string bytes = test::read_bytes(dir / "loss.png");
  const test::DecodedPng png = test::decode_png(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(png.width, 320);
  EXPECT_EQ(png.height, 200);
  EXPECT_EQ(png.rgb, render_line_chart({s}, options).rgb());
}

}  // namespace
}  // namespace nibble
