// Human-readable sizes for what the CLI prints: decimal units, as model sizes are quoted.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace nibble::cli {

inline std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) return fmt::format("{:.3f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.3f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.3f} kB", b / 1e3);
  return fmt::format("{} B", bytes);
}

inline std::string format_count(int64_t count) {
  const double c = static_cast<double>(count);
  if (c >= 1e9) return fmt::format("{:.3f} B", c / 1e9);
  if (c >= 1e6) return fmt::format("{:.3f} M", c / 1e6);
  if (c >= 1e3) return fmt::format("{:.3f} K", c / 1e3);
  return fmt::format("{}", count);
}

}  // namespace nibble::cli
