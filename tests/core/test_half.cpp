#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

#include "nibble/core/half.h"

using namespace nibble;

namespace {
float from_bits(uint32_t u) { return bits_float(u); }
}  // namespace

TEST(Half, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly between two bf16 values (1 and 1+2^-7): ties go to even (1.0).
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000u)).bits, 0x3f80);
  // 1 + 3*2^-8 is a tie between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000u)).bits, 0x3f82);
  // Just above a tie rounds up.
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001u)).bits, 0x3f81);
  EXPECT_EQ(float_to_bf16(-2.0f).bits, 0xc000);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()).bits, 0x7f80);
  EXPECT_EQ(float_to_bf16(std::nanf("")).bits, 0x7fc0);
  // The largest float rounds to infinity, as torch does.
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()).bits, 0x7f80);
}

TEST(Half, Bf16RoundTripsEveryPattern) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    bf16_t h{static_cast<uint16_t>(b)};
    float f = bf16_to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_bf16(f).bits, b);
  }
}

TEST(Half, Fp16RoundTripsEveryPattern) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    fp16_t h{static_cast<uint16_t>(b)};
    float f = fp16_to_float(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_fp16(f).bits, b) << "pattern " << b;
  }
}

TEST(Half, Fp16MatchesDoubleRoundingReference) {
  // Reference: nearest fp16 by exhaustive search over finite patterns, ties to even mantissa.
  auto reference = [](float x) -> uint16_t {
    uint16_t best = 0;
    double best_err = INFINITY;
    for (uint32_t b = 0; b < 0x7c00; ++b) {
      for (uint32_t sign : {0u, 0x8000u}) {
        uint16_t pattern = static_cast<uint16_t>(b | sign);
        double v = fp16_to_float(fp16_t{pattern});
        double err = std::fabs(v - static_cast<double>(x));
        if (err < best_err || (err == best_err && (pattern & 1) == 0 && (best & 1) == 1)) {
          best = pattern;
          best_err = err;
        }
      }
    }
    return best;
  };
  const float samples[] = {0.1f, -0.3333333f, 1e-5f, -6.1e-5f, 2.98e-8f, 3.0e-8f, 65504.0f,
                           65519.0f, 1.00048828125f, 1.000732421875f, 5.96e-8f, 1234.567f};
  for (float x : samples) EXPECT_EQ(float_to_fp16(x).bits, reference(x)) << x;
  EXPECT_EQ(float_to_fp16(65520.0f).bits, 0x7c00);
  EXPECT_EQ(float_to_fp16(-1e9f).bits, 0xfc00);
}
