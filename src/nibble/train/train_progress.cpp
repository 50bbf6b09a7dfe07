#include "nibble/train/train_progress.h"

#include <algorithm>

#include <fmt/format.h>

namespace nibble {

namespace {

constexpr int kBarWidth = 10;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

std::string format_train_progress(const TrainProgressStats& s, int64_t total_steps, double elapsed, double eta) {
  const int64_t total = std::max<int64_t>(total_steps, 1);
  const int filled = static_cast<int>(kBarWidth * std::clamp<int64_t>(s.step, 0, total) / total);
  std::string text = fmt::format("step {}/{} [{}{}] loss {:.4f} | lr {:.2e} | {:.0f} tok/s", s.step, total_steps,
                                 std::string(filled, '#'), std::string(kBarWidth - filled, ' '), s.loss,
                                 s.learning_rate, s.tokens_per_second);
  if (s.gpu_allocated_bytes >= 0) {
    text += fmt::format(" | GPU {:.2f}", static_cast<double>(s.gpu_allocated_bytes) / kGiB);
    if (s.gpu_peak_bytes >= 0) text += fmt::format("/{:.2f}", static_cast<double>(s.gpu_peak_bytes) / kGiB);
    text += " GiB";
  }
  text += " | " + format_duration(elapsed);
  if (eta >= 0) text += ", ETA " + format_duration(eta);
  return text;
}

TrainProgress::TrainProgress(int64_t total_steps, int64_t logging_steps, int64_t start_step, std::FILE* out,
                             std::optional<bool> terminal)
    : total_steps_(total_steps), logging_steps_(std::max<int64_t>(logging_steps, 1)), start_step_(start_step),
      line_(out, terminal), start_(std::chrono::steady_clock::now()) {}

double TrainProgress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void TrainProgress::update(const TrainProgressStats& stats) {
  const double elapsed = elapsed_seconds();
  const int64_t done_here = stats.step - start_step_;
  const double eta = done_here > 0 ? elapsed / static_cast<double>(done_here) *
                                         static_cast<double>(std::max<int64_t>(total_steps_ - stats.step, 0))
                                   : -1.0;
  const bool last = stats.step >= total_steps_;
  if (line_.terminal()) {
    last_text_ = format_train_progress(stats, total_steps_, elapsed, eta);
    line_.draw(last_text_, last);
  } else if (stats.step % logging_steps_ == 0 || last) {
    line_.print(format_train_progress(stats, total_steps_, elapsed, eta));
  }
}

void TrainProgress::message(std::string_view text) {
  line_.print(text);
  if (!last_text_.empty()) line_.draw(last_text_, true);
}

void TrainProgress::finish() {
  if (!line_.terminal() || last_text_.empty()) return;
  line_.draw(last_text_, true);
  line_.keep();
}

}  // namespace nibble
