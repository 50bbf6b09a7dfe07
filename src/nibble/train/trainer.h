// A whole `nibble train` job: the model (quantized on load when it is a 16-bit folder), the
// tokenized data, a fresh or resumed LoRA adapter, and the loop of optimizer steps with logging,
// evaluation and checkpoints, ending with the adapter written as PEFT writes it.
//
// Writes into config.out:
//   adapter_config.json, adapter_model.safetensors   the final adapter (PEFT loads it as is)
//   checkpoint-<step>/                               every save_steps (checkpoint_dir.h)
//   metrics.jsonl                                    one line per logged step and evaluation
//   training_args.json                               the resolved options
//   loss.png                                         the loss curve, at the end
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "nibble/train/train_config.h"

namespace nibble {

struct TrainSummary {
  int64_t steps = 0;            // optimizer steps taken in the whole run (resumed ones included)
  int64_t skipped_steps = 0;    // steps skipped for a NaN/Inf (on_nonfinite = skip)
  double last_loss = 0.0;       // of the last step
  std::optional<double> first_eval_loss, last_eval_loss;
  double seconds = 0.0;         // of this process's part of the run
  int64_t tokens = 0;           // tokens this process trained on (padding included)
  int64_t peak_gpu_bytes = 0;   // measured: the allocator's peak (0 on the CPU)
  int64_t predicted_gpu_bytes = 0;  // nibble memory's prediction for the same run
  std::string device;
};

// Runs the job; throws nibble::Error (NonFiniteError for a NaN/Inf under on_nonfinite = stop)
// with nothing half-written: the last checkpoint stays intact.
TrainSummary run_training(const TrainConfig& config);

}  // namespace nibble
