// plot_loss: draws the loss curves of one or more metrics JSONL files in one PNG, so nibble's
// run and the Python peer's (transformers + PEFT + bitsandbytes, logging the same keys) can be
// compared by eye and committed under bench/.
//
//   plot_loss --out bench/train/loss_nibble_vs_peft.png nibble=out/metrics.jsonl peft=peer.jsonl
//   plot_loss --out eval.png --y loss --y eval_loss --title "tiny model" out/metrics.jsonl
//
// An input is LABEL=PATH, or PATH (labelled by its file name). Each --y key gives one series per
// file ("LABEL KEY" when there are several keys); records without the key are skipped, so train
// and eval lines of one log separate by themselves.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/train/loss_plot.h"
#include "nibble/train/metrics_log.h"

int main(int argc, char** argv) {
  CLI::App app{"Plot loss curves from metrics JSONL files into one PNG"};
  std::vector<std::string> inputs;
  std::string out;
  std::vector<std::string> y_keys;
  std::string x_key = "step";
  nibble::PlotOptions options;
  options.title = "";
  app.add_option("inputs", inputs, "LABEL=PATH or PATH of a metrics JSONL file")->required();
  app.add_option("--out", out, "PNG to write")->required();
  app.add_option("--y", y_keys, "key to plot (repeatable; default: loss)");
  app.add_option("--x", x_key, "key of the x axis")->capture_default_str();
  app.add_option("--title", options.title, "chart title (default: the keys)");
  app.add_option("--width", options.width, "pixels")->capture_default_str();
  app.add_option("--height", options.height, "pixels")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (y_keys.empty()) y_keys.push_back("loss");
  try {
    std::vector<nibble::PlotSeries> series;
    for (const std::string& input : inputs) {
      const size_t eq = input.find('=');
      const std::string path = eq == std::string::npos ? input : input.substr(eq + 1);
      const std::string label =
          eq == std::string::npos ? std::filesystem::path(path).filename().string() : input.substr(0, eq);
      const auto records = nibble::read_metrics_log(path);
      for (const std::string& key : y_keys) {
        const std::string name = y_keys.size() > 1 ? label + " " + key : label;
        nibble::PlotSeries s = nibble::metrics_series(records, name, x_key, key);
        fmt::print("{}: {} points of {} from {}\n", name, s.x.size(), key, path);
        if (!s.x.empty()) series.push_back(std::move(s));
      }
    }
    options.x_label = x_key;
    options.y_label = fmt::format("{}", fmt::join(y_keys, ", "));
    if (options.title.empty()) options.title = options.y_label;
    nibble::write_line_chart_png(out, series, options);
    fmt::print("wrote {}\n", out);
  } catch (const std::exception& e) {
    fmt::print(stderr, "plot_loss: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
