// A one-line progress bar on stderr: count, rate, elapsed time and ETA. Drawn only when stderr
// is a terminal, at most ten times a second, so logs and pipes stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace nibble::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  // `done` items finished, working on `current`.
  void update(int64_t done, std::string_view current);
  // Clears the line.
  void finish();
  double elapsed_seconds() const;

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace nibble::cli
