// The RoPE inverse frequencies and cos/sin table against numbers derived by hand and with a
// numpy float32 emulation of transformers' steps (pow rounded once from double; torch.reciprocal
// for scalar / tensor; every other op in float32):
//   e = arange(0, D, 2).astype(float32) / float32(D); inv = 1 / float32(pow(theta, e))
//   llama3: wl = (1/inv) * float32(2*pi); smooth = ((1/wl) * orig - low) / (high - low); ...
// Values are compared as float32 bit patterns: the table is exact, so the test is too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "nibble/backend/rope_table.h"

namespace nibble {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

RopeConfig plain(double theta) {
  RopeConfig c;
  c.theta = theta;
  return c;
}

TEST(RopeTable, DefaultByHand) {
  // D = 4: exponents 0 and 0.5, so inv_freq = 1 and 1 / sqrt(10000) = 0.01 (rounded to fp32).
  std::vector<float> inv = rope_inv_freq(plain(10000.0), 4);
  ASSERT_EQ(inv.size(), 2u);
  EXPECT_EQ(inv[0], 1.0f);
  EXPECT_EQ(inv[1], 0.01f);
}

TEST(RopeTable, DefaultMatchesNumpy) {
  std::vector<float> inv = rope_inv_freq(plain(10000.0), 64);
  ASSERT_EQ(inv.size(), 32u);
  EXPECT_EQ(bits(inv[1]), 0x3f3ff911u);
  EXPECT_EQ(bits(inv[31]), 0x390bd472u);
}

TEST(RopeTable, LinearDividesByFactor) {
  RopeConfig c = plain(10000.0);  // head_dim 64
  c.type = RopeType::linear;
  c.factor = 2.0;
  std::vector<float> inv = rope_inv_freq(c, 64), base = rope_inv_freq(plain(10000.0), 64);
  EXPECT_EQ(bits(inv[0]), 0x3f000000u);  // 0.5
  EXPECT_EQ(bits(inv[1]), 0x3ebff911u);
  EXPECT_EQ(bits(inv[17]), 0x3b75b9b0u);
  EXPECT_EQ(bits(inv[31]), 0x388bd472u);
  for (size_t i = 0; i < inv.size(); ++i) EXPECT_EQ(inv[i], base[i] / 2.0f) << i;  // dividing by 2 is exact
}

// Llama 3.1's settings with head_dim 128: wavelengths under 2048 (i < 29) keep their frequency,
// those over 8192 (i > 34) are divided by 8, and i = 29..34 are interpolated.
TEST(RopeTable, Llama3Bands) {
  RopeConfig c = plain(500000.0);  // head_dim 128
  c.type = RopeType::llama3;
  c.factor = 8.0;
  c.low_freq_factor = 1.0;
  c.high_freq_factor = 4.0;
  c.original_max_position_embeddings = 8192;
  std::vector<float> inv = rope_inv_freq(c, 128), base = rope_inv_freq(plain(500000.0), 128);
  ASSERT_EQ(inv.size(), 64u);
  for (int i = 0; i < 29; ++i) EXPECT_EQ(inv[i], base[i]) << i;
  for (int i = 35; i < 64; ++i) EXPECT_EQ(inv[i], base[i] / 8.0f) << i;
  const uint32_t medium[6] = {0x3b0dfd06u, 0x3ab3d11du, 0x3a60979eu, 0x3a0995d2u, 0x39a3f108u, 0x393b2dd2u};
  for (int i = 29; i < 35; ++i) {
    EXPECT_EQ(bits(inv[i]), medium[i - 29]) << i;
    // Interpolated: strictly between the scaled and the unscaled frequency.
    EXPECT_LT(inv[i], base[i]) << i;
    EXPECT_GT(inv[i], base[i] / 8.0f) << i;
  }
  EXPECT_EQ(bits(inv[0]), 0x3f800000u);
  EXPECT_EQ(bits(inv[1]), 0x3f508ac1u);
  EXPECT_EQ(bits(inv[63]), 0x34a4c2ffu);
}

TEST(RopeTable, CosSinOfFp32Angles) {
  RopeTable table = rope_table_build(plain(10000.0), 64, 1001, Device::cpu);
  ASSERT_EQ(table.positions(), 1001);
  ASSERT_EQ(table.head_dim(), 64);
  const float* c = table.cos.data_as<float>();
  const float* s = table.sin.data_as<float>();
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(c[j], 1.0f);  // position 0
    EXPECT_EQ(s[j], 0.0f);
  }
  // Position 1000, j = 1: the fp32 angle 1000 * 0.7498942f = 749.89423 (numpy), then its cos/sin.
  EXPECT_EQ(bits(c[1000 * 32 + 1]), 0xbf15a7e1u);
  EXPECT_EQ(bits(s[1000 * 32 + 1]), 0x3f4fb31du);
}

TEST(RopeTable, RejectsBadConfig) {
  EXPECT_THROW(rope_inv_freq(plain(10000.0), 7), Error);
  RopeConfig c = plain(10000.0);  // head_dim 64
  c.type = RopeType::llama3;
  c.low_freq_factor = 4.0;
  c.high_freq_factor = 1.0;
  EXPECT_THROW(rope_inv_freq(c, 64), Error);
}

}  // namespace
}  // namespace nibble
