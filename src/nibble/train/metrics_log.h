// metrics.jsonl: one JSON object per line, appended as training goes, so a plot or a person can
// follow a run while it is running and after it was killed. Keys are those of transformers'
// log_history (step, epoch, loss, learning_rate, grad_norm, eval_loss, ...) plus nibble's own
// (tokens_per_second, elapsed, gpu_memory_*), so a peer run logged with the same keys compares
// line for line (bench/train/plot_loss reads both).
//
// Numbers are written as Python's json.dumps writes them (shortest repr that round-trips), so a
// value read back is the double that was logged. NaN and Inf, which JSON cannot hold, are written
// as null.
//
// Each line goes out in one write() as soon as it is logged: a kill loses at most the line being
// written. Resuming from the checkpoint of step S first cuts the file back to its lines of step
// <= S (and drops a torn last line), so the resumed run's log equals an uninterrupted run's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nibble {

class MetricsLog {
 public:
  // A fresh log: truncates `path` (creates it if missing).
  static MetricsLog create(const std::string& path);
  // Continues the log of a run resumed at `step`: keeps the lines up to the first whose "step"
  // is > `step` (lines without a step stay), drops the rest and any torn last line (the file is
  // rewritten atomically), then appends. A missing file starts empty. A complete line that is not
  // a JSON object is an error naming path:line.
  static MetricsLog resume(const std::string& path, int64_t step);

  MetricsLog(MetricsLog&& other) noexcept;
  MetricsLog& operator=(MetricsLog&& other) noexcept;
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  ~MetricsLog();

  // Appends `record` (a JSON object; keys in the order given) as one line. Throws nibble::Error
  // naming the file when the write fails (a full disk).
  void write(const nlohmann::ordered_json& record);

  const std::string& path() const { return path_; }

 private:
  MetricsLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
};

// One line of the log as written: {"step": 5, "loss": 1.25} with json.dumps' separators and
// non-finite numbers as null.
std::string metrics_line(const nlohmann::ordered_json& record);

// Every record of a JSONL file, in order; blank lines skipped, a torn last line (no newline, not
// JSON) dropped. Any other line that is not a JSON object is an error naming path:line. NaN,
// Infinity and -Infinity (as Python writes them) read as null.
std::vector<nlohmann::ordered_json> read_metrics_log(const std::string& path);

}  // namespace nibble
