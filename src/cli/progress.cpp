#include "cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace nibble::cli {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), enabled_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_() {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, std::string_view current) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * done / total_);
  double elapsed = elapsed_seconds();
  double eta = done > 0 ? elapsed * static_cast<double>(total_ - done) / static_cast<double>(done) : 0.0;
  std::string item(current.substr(0, 48));
  fmt::print(stderr, "\r\033[2K{} [{}{}] {}/{}  {:.1f} s, ETA {:.1f} s  {}", label_, std::string(filled, '#'),
             std::string(kWidth - filled, ' '), done, total_, elapsed, eta, item);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  fmt::print(stderr, "\r\033[2K");
  std::fflush(stderr);
}

}  // namespace nibble::cli
