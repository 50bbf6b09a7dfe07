// Schedules against transformers 5.24 itself: the values below are the param group's lr at each
// of 11 updates (base lr 1.0) of get_*_schedule_with_warmup(optimizer, 2, 10), printed by Python
// with repr (17 significant digits). warmup 2 = TrainingArguments(warmup_steps=0.15)
// .get_warmup_steps(10) = ceil(1.5).
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "nibble/optim/lr_schedule.h"

namespace nibble {
namespace {

struct Expected {
  const char* name;
  std::vector<double> values;
};

TEST(LrSchedule, MatchesTransformers) {
  const std::vector<Expected> cases = {
      {"linear", {0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0}},
      {"cosine", {0.0, 0.5, 1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5,
                  0.30865828381745514, 0.14644660940672627, 0.03806023374435663, 0.0}},
      {"constant_with_warmup", {0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}},
      {"constant", {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}},
  };
  const int64_t warmup = warmup_steps_for(0.15, 10);
  ASSERT_EQ(warmup, 2);
  for (const Expected& c : cases) {
    const LrSchedule s = parse_lr_schedule(c.name);
    EXPECT_EQ(lr_schedule_name(s), c.name);
    for (int64_t k = 0; k <= 10; ++k) {
      // The same double operations in the same order; only cos comes from the C library, which
      // is within 1 ulp on glibc, amplified by at most 2 by the 0.5 * (1 + x) that follows:
      // bound 4 ulps of the value (exact for everything but cosine).
      const double want = c.values[k];
      const double got = lr_multiplier(s, k, warmup, 10);
      EXPECT_LE(std::fabs(got - want), 4 * std::numeric_limits<double>::epsilon() * std::fabs(want))
          << c.name << " step " << k;
    }
  }
  EXPECT_DOUBLE_EQ(lr_at_step(LrSchedule::linear, 2e-4, 3, 2, 10), 2e-4 * 0.875);
  EXPECT_THROW(parse_lr_schedule("polynomial"), Error);
}

TEST(LrSchedule, WarmupStepsAsTransformersComputesThem) {
  // TrainingArguments(warmup_steps=r).get_warmup_steps(t) for (r, t) below: 30, 1, 2, 0, 5.
  EXPECT_EQ(warmup_steps_for(0.03, 1000), 30);
  EXPECT_EQ(warmup_steps_for(0.1, 7), 1);
  EXPECT_EQ(warmup_steps_for(0.5, 3), 2);
  EXPECT_EQ(warmup_steps_for(0.0, 10), 0);
  EXPECT_EQ(warmup_steps_for(5.0, 100), 5);
  EXPECT_THROW(warmup_steps_for(-0.1, 10), Error);
}

}  // namespace
}  // namespace nibble
