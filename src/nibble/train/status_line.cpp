#include "nibble/train/status_line.h"

#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

namespace nibble {

StatusLine::StatusLine(std::FILE* out, std::optional<bool> terminal)
    : out_(out), terminal_(terminal ? *terminal : isatty(fileno(out)) != 0) {}

bool StatusLine::draw(std::string_view text, bool force) {
  if (!terminal_) return false;
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return false;
  last_draw_ = now;
  drawn_ = true;
  fmt::print(out_, "\r\033[2K{}", text);
  std::fflush(out_);
  return true;
}

void StatusLine::print(std::string_view text) {
  clear();
  fmt::print(out_, "{}\n", text);
  std::fflush(out_);
  // The next draw() must not wait: the line it replaces is gone.
  drawn_ = false;
}

void StatusLine::clear() {
  if (!terminal_ || !drawn_) return;
  fmt::print(out_, "\r\033[2K");
  std::fflush(out_);
  drawn_ = false;
}

void StatusLine::keep() {
  if (!terminal_ || !drawn_) return;
  fmt::print(out_, "\n");
  std::fflush(out_);
  drawn_ = false;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

}  // namespace nibble
