// One optimizer step over gradient-accumulation micro-batches, as transformers' Trainer takes it:
// the loss of every micro-batch is scaled by 1 / (target tokens of the whole step) (the
// num_items_in_batch reduction), the gradients summed, clipped to max_grad_norm, and one AdamW
// update applied at the schedule's learning rate.
//
// A loss or gradient that is NaN or Inf never reaches the adapter: the step throws a
// NonFiniteError naming the step and the first bad tensor (on_nonfinite = stop), or leaves the
// adapter and optimizer as they were and reports the step as skipped (on_nonfinite = skip).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nibble/core/error.h"
#include "nibble/model/llama_training.h"
#include "nibble/optim/lr_schedule.h"
#include "nibble/optim/optimizer.h"

namespace nibble {

enum class NonFinitePolicy : uint8_t { stop, skip };
// "stop" or "skip"; throws naming both otherwise.
NonFinitePolicy parse_nonfinite_policy(const std::string& name);

class NonFiniteError : public Error {
 public:
  using Error::Error;
};

struct StepSchedule {
  double learning_rate = 2e-4;
  LrSchedule schedule = LrSchedule::linear;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  NonFinitePolicy on_nonfinite = NonFinitePolicy::stop;
};

struct StepResult {
  double loss = 0.0;           // mean over the step's target tokens
  int64_t target_tokens = 0;
  int64_t tokens = 0;          // every token of the micro-batches, padding included
  float grad_norm = 0.0f;      // before clipping, as the Trainer logs it
  double learning_rate = 0.0;  // the one applied (0 when skipped)
  bool skipped = false;
  std::string skip_reason;
};

class StepRunner {
 public:
  // `params` are the adapter tensors with their gradients, named as PEFT names them; the
  // optimizer was built over the same tensors.
  StepRunner(LlamaTraining& training, AdamwOptimizer& optimizer, std::vector<OptimParam> params,
             const StepSchedule& schedule);

  // Update `step` (0-based) from `micro_batches`; `first_micro_step` numbers the first of them
  // over the whole run (dropout masks).
  StepResult run(const std::vector<Batch>& micro_batches, int64_t step, uint64_t first_micro_step);

 private:
  // The name of the first parameter whose gradient is not finite, or "".
  std::string first_nonfinite_gradient() const;

  LlamaTraining& training_;
  AdamwOptimizer& optimizer_;
  std::vector<OptimParam> params_;
  std::vector<Tensor> grads_;
  StepSchedule schedule_;
};

}  // namespace nibble
