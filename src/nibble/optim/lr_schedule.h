// Learning-rate schedules with warmup, as transformers defines them (transformers/optimization.py,
// TrainingArguments.get_warmup_steps). The Trainer applies the multiplier of step k (counting
// optimizer updates from 0) to the k-th update, so lr_at_step(..., 0, ...) is the first update's.
#pragma once

#include <cstdint>
#include <string_view>

namespace nibble {

enum class LrSchedule : uint8_t {
  constant,              // get_constant_schedule: 1 always; warmup is ignored, as in transformers
  constant_with_warmup,  // linear 0 -> 1 over the warmup, then 1
  linear,                // warmup, then linear down to 0 at total_steps
  cosine,                // warmup, then half a cosine down to 0 at total_steps
};

std::string_view lr_schedule_name(LrSchedule schedule);
// transformers' lr_scheduler_type names; throws nibble::Error naming the accepted ones.
LrSchedule parse_lr_schedule(std::string_view name);

// TrainingArguments.get_warmup_steps: a value >= 1 is a step count (truncated), a value in
// [0, 1) a ratio of total_steps, rounded up: ceil(total_steps * ratio).
int64_t warmup_steps_for(double warmup, int64_t total_steps);

// The multiplier of base_lr at update `step` (0-based); doubles as Python computes them.
double lr_multiplier(LrSchedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps);
inline double lr_at_step(LrSchedule schedule, double base_lr, int64_t step, int64_t warmup_steps,
                         int64_t total_steps) {
  return base_lr * lr_multiplier(schedule, step, warmup_steps, total_steps);
}

}  // namespace nibble
