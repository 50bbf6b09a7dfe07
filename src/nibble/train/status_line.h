// A status line on a terminal: redrawn in place (\r, clear to end of line), at most ten times a
// second so a fast loop does not spend its time printing. When the stream is not a terminal
// (a log file, a pipe) nothing is redrawn: the caller prints plain lines instead, so logs hold
// text rather than carriage returns. The same rules as src/cli/progress.h's bar, which can be
// rebuilt on this once the CLI links the train module.
#pragma once

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace nibble {

class StatusLine {
 public:
  // `terminal`: whether to redraw in place; by default, whether `out` is a terminal.
  explicit StatusLine(std::FILE* out = stderr, std::optional<bool> terminal = std::nullopt);

  bool terminal() const { return terminal_; }
  // Terminal only: redraws the line with `text` unless the last redraw was under 100 ms ago
  // (`force` redraws anyway, for the last step). Returns whether it drew.
  bool draw(std::string_view text, bool force = false);
  // A line of its own (a checkpoint saved, an eval result, or the plain progress line off a
  // terminal); on a terminal the status line is cleared first and redrawn by the next draw().
  void print(std::string_view text);
  // Clears the status line (terminal) so what follows starts on a clean line.
  void clear();
  // Leaves the status line on the screen as it is and moves to a new line.
  void keep();

 private:
  std::FILE* out_;
  bool terminal_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

// "42s", "3m07s", "2h05m", "3d04h": ETA and elapsed times at a glance.
std::string format_duration(double seconds);

}  // namespace nibble
