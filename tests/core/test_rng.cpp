#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/rng.h"

using namespace nibble;

namespace {

void expect_block(const Philox4x32& got, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  EXPECT_EQ(got.v[0], a);
  EXPECT_EQ(got.v[1], b);
  EXPECT_EQ(got.v[2], c);
  EXPECT_EQ(got.v[3], d);
}

}  // namespace

// Known-answer vectors of Random123's kat_vectors for philox4x32 with 10 rounds (also recomputed
// from the SC'11 definition by an independent Python transcription before being written here).
TEST(Rng, Philox4x32KnownAnswers) {
  expect_block(philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu,
               0x9b00dbd8u);
  expect_block(philox4x32_10(Philox4x32{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
                             0xffffffffu, 0xffffffffu),
               0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
  // Counter and key are the first hex digits of pi.
  expect_block(philox4x32_10(Philox4x32{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                             0xa4093822u, 0x299f31d0u),
               0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Rng, CounterLayoutIsSeedStreamIndex) {
  // Block k of (seed, stream) is Philox with counter (k, stream) and key seed, low words first.
  const uint64_t seed = 0x299f31d0a4093822ull, stream = 0x0370734413198a2eull;
  expect_block(philox_block(seed, stream, 0x85a308d3243f6a88ull), 0xd16cfe09u, 0x94fdccebu, 0x5001e420u,
               0x24126ea1u);
  // Index 4k+j is word j of block k.
  const Philox4x32 block = philox_block(seed, stream, 1000);
  for (uint64_t j = 0; j < 4; ++j) EXPECT_EQ(philox_uint32_at(seed, stream, 4000 + j), block.v[j]);
}

TEST(Rng, SequentialReaderMatchesRandomAccess) {
  Rng rng(42, 7, 5);
  for (uint64_t i = 5; i < 105; ++i) EXPECT_EQ(rng.next_uint32(), philox_uint32_at(42, 7, i)) << i;
  Rng uniform(42, 7);
  for (uint64_t i = 0; i < 50; ++i) EXPECT_EQ(uniform.next_uniform(), philox_uniform_at(42, 7, i));
  Rng normal(42, 7, 3);  // starting mid-pair and mid-block
  for (uint64_t i = 3; i < 53; ++i) EXPECT_EQ(normal.next_normal(), philox_normal_at(42, 7, i));
  // Jumping back replays the same values.
  rng.set_offset(5);
  EXPECT_EQ(rng.next_uint32(), philox_uint32_at(42, 7, 5));
}

TEST(Rng, StreamsAndSeedsDiffer) {
  EXPECT_NE(philox_uint32_at(1, 0, 0), philox_uint32_at(2, 0, 0));
  EXPECT_NE(philox_uint32_at(1, 0, 0), philox_uint32_at(1, 1, 0));
  EXPECT_NE(philox_uint32_at(1, 0, 0), philox_uint32_at(1, 0, 1));
}

TEST(Rng, UniformEndpoints) {
  EXPECT_EQ(uint32_to_uniform(0), 0.0f);
  EXPECT_LT(uint32_to_uniform(0xffffffffu), 1.0f);
  EXPECT_EQ(uint32_to_uniform(0xffffffffu), 1.0f - 1.0f / 16777216.0f);
}

// Moments of 2^20 draws. For n iid draws the sample mean has standard deviation sigma/sqrt(n); a
// bound of 6 standard errors fails a correct generator with probability ~2e-9 per check.
TEST(Rng, UniformAndNormalMoments) {
  const int64_t n = int64_t{1} << 20;
  const double six_se = 6.0 / std::sqrt(static_cast<double>(n));
  std::vector<float> u(n), z(n);
  Rng(123, 0).fill_uniform(u.data(), n, 0.0f, 1.0f);
  Rng(123, 1).fill_normal(z.data(), n, 0.0f, 1.0f);

  double su = 0, su2 = 0, sz = 0, sz2 = 0, sz4 = 0;
  int64_t below_half = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_GE(u[i], 0.0f);
    ASSERT_LT(u[i], 1.0f);
    ASSERT_TRUE(std::isfinite(z[i]));
    su += u[i];
    su2 += double(u[i]) * u[i];
    sz += z[i];
    sz2 += double(z[i]) * z[i];
    sz4 += double(z[i]) * z[i] * z[i] * z[i];
    below_half += u[i] < 0.5f;
  }
  // U(0,1): mean 1/2 (sd 1/sqrt(12)), E[u^2] = 1/3 (sd of u^2: sqrt(1/5 - 1/9) = 0.298).
  EXPECT_NEAR(su / n, 0.5, six_se * std::sqrt(1.0 / 12.0));
  EXPECT_NEAR(su2 / n, 1.0 / 3.0, six_se * 0.2982);
  // Bernoulli(1/2) count: sd 1/2 per draw.
  EXPECT_NEAR(double(below_half) / n, 0.5, six_se * 0.5);
  // N(0,1): mean 0 (sd 1), E[z^2] = 1 (sd sqrt(2)), E[z^4] = 3 (sd sqrt(105 - 9) = 9.80).
  EXPECT_NEAR(sz / n, 0.0, six_se);
  EXPECT_NEAR(sz2 / n, 1.0, six_se * std::sqrt(2.0));
  EXPECT_NEAR(sz4 / n, 3.0, six_se * 9.80);
}

// Chi-square over 64 equal bins of the top 6 bits: 63 degrees of freedom, mean 63, sd sqrt(126)
// = 11.2; 63 + 6 sd = 130 is exceeded by a correct generator with probability < 1e-8.
TEST(Rng, UniformBinsAreFlat) {
  const int64_t n = int64_t{1} << 20;
  std::vector<int64_t> bins(64, 0);
  Rng rng(9, 3);
  for (int64_t i = 0; i < n; ++i) ++bins[rng.next_uint32() >> 26];
  const double expected = double(n) / 64;
  double chi2 = 0;
  for (int64_t b : bins) chi2 += (b - expected) * (b - expected) / expected;
  EXPECT_LT(chi2, 63.0 + 6.0 * std::sqrt(126.0));
}

// Neighbouring Box-Muller outputs are independent: their sample correlation has sd 1/sqrt(n/2).
TEST(Rng, NormalPairsAreUncorrelated) {
  const int64_t pairs = int64_t{1} << 19;
  Rng rng(77, 0);
  double s = 0;
  for (int64_t i = 0; i < pairs; ++i) {
    const double a = rng.next_normal(), b = rng.next_normal();
    s += a * b;
  }
  EXPECT_NEAR(s / pairs, 0.0, 6.0 / std::sqrt(double(pairs)));
}
