// The training progress line on stderr:
//   step 120/1000 [###       ] loss 1.2345 | lr 1.96e-04 | 2345 tok/s | GPU 5.21/6.02 GiB | 2m05s, ETA 15m20s
// On a terminal it is redrawn in place at most ten times a second (status_line.h); elsewhere a
// plain line is printed every logging_steps and at the last step, so a log file reads as a table
// of the same numbers metrics.jsonl holds.
//
// The ETA is measured from the steps this process ran, not from step 0: after a resume the
// restored steps took no time here.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "nibble/train/status_line.h"

namespace nibble {

// What the loop knows after an optimizer step. GPU figures are bytes, negative when not on a GPU.
struct TrainProgressStats {
  int64_t step = 0;                // optimizer steps done (1 after the first)
  double loss = 0.0;               // the loss to show (the last step's, or a running mean)
  double learning_rate = 0.0;      // the rate the step used
  double tokens_per_second = 0.0;
  int64_t gpu_allocated_bytes = -1;
  int64_t gpu_peak_bytes = -1;
};

// The line itself, without the leading carriage return; `elapsed` and `eta` in seconds (negative
// eta: unknown). Separate from the class so its format is tested exactly.
std::string format_train_progress(const TrainProgressStats& stats, int64_t total_steps, double elapsed, double eta);

class TrainProgress {
 public:
  // `start_step`: the step the run starts from (a resumed run's checkpoint step, else 0).
  TrainProgress(int64_t total_steps, int64_t logging_steps, int64_t start_step = 0, std::FILE* out = stderr,
                std::optional<bool> terminal = std::nullopt);

  // After each optimizer step.
  void update(const TrainProgressStats& stats);
  // A line above the progress line: "saved checkpoint-500", "eval loss 1.23 at step 500".
  void message(std::string_view text);
  // Leaves the last progress line on the screen and moves to a new line.
  void finish();

  double elapsed_seconds() const;

 private:
  int64_t total_steps_;
  int64_t logging_steps_;
  int64_t start_step_;
  StatusLine line_;
  std::chrono::steady_clock::time_point start_;
  std::string last_text_;
};

}  // namespace nibble
