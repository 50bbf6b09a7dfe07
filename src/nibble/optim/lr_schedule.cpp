#include "nibble/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "nibble/core/error.h"

namespace nibble {

std::string_view lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::constant: return "constant";
    case LrSchedule::constant_with_warmup: return "constant_with_warmup";
    case LrSchedule::linear: return "linear";
    case LrSchedule::cosine: return "cosine";
  }
  return "?";
}

LrSchedule parse_lr_schedule(std::string_view name) {
  for (LrSchedule s : {LrSchedule::constant, LrSchedule::constant_with_warmup, LrSchedule::linear, LrSchedule::cosine})
    if (name == lr_schedule_name(s)) return s;
  fail("unknown lr_scheduler_type '{}': expected constant, constant_with_warmup, linear or cosine", name);
}

int64_t warmup_steps_for(double warmup, int64_t total_steps) {
  NIBBLE_CHECK(warmup >= 0.0 && std::isfinite(warmup), "warmup must be a ratio in [0, 1) or a step count, got {}",
               warmup);
  if (warmup >= 1.0) return static_cast<int64_t>(warmup);
  return static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * warmup));
}

double lr_multiplier(LrSchedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  // The expressions follow transformers' lambdas operation for operation, so the doubles agree.
  const double s = static_cast<double>(step);
  if (schedule == LrSchedule::constant) return 1.0;
  if (step < warmup_steps) return s / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  switch (schedule) {
    case LrSchedule::constant_with_warmup: return 1.0;
    case LrSchedule::linear: return std::max(0.0, static_cast<double>(total_steps - step) / decay_steps);
    case LrSchedule::cosine: {
      const double progress = static_cast<double>(step - warmup_steps) / decay_steps;
      const double num_cycles = 0.5;
      const double factor = 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress));
      return std::max(0.0, factor * (1.0 - 0.0) + 0.0);
    }
    default: return 1.0;
  }
}

}  // namespace nibble
