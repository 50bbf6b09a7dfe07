// The tables of formats.h against the decimal values of bnb-format.md and the rules they obey.
#include <cmath>

#include <gtest/gtest.h>

#include "nibble/quant/formats.h"
#include "quant_test_util.h"

using namespace nibble;
using namespace nibble::quant_test;

TEST(QuantFormats, Nf4TableMatchesDecimalsAndIsSorted) {
  // Shortest decimal representations from bnb-format.md 1.1; parsing each must give the bits.
  const double decimals[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                               -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                               0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                               0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(bits_float(nf4_code_bits(c)), static_cast<float>(decimals[c])) << "code " << c;
    if (c > 0) EXPECT_LT(bits_float(nf4_code_bits(c - 1)), bits_float(nf4_code_bits(c)));
  }
}

TEST(QuantFormats, Nf4ThresholdsAreMidpointsExceptFour) {
  // bnb-format.md 1.4: thresholds 0 and 12, 14 are 1 ulp below, 8 is 1 ulp above the float32 midpoint.
  for (int k = 0; k < 15; ++k) {
    float midpoint = (bits_float(nf4_code_bits(k)) + bits_float(nf4_code_bits(k + 1))) * 0.5f;
    float t = bits_float(nf4_threshold_bits(k));
    if (k == 0 || k == 12 || k == 14) {
      EXPECT_EQ(t, down(midpoint)) << "threshold " << k;
    } else if (k == 8) {
      EXPECT_EQ(t, up(midpoint)) << "threshold " << k;
    } else {
      EXPECT_EQ(t, midpoint) << "threshold " << k;
    }
  }
}

TEST(QuantFormats, Fp4TablesAreRawOverTwelve) {
  const float raw[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
  for (int m = 0; m < 8; ++m) {
    EXPECT_EQ(bits_float(fp4_magnitude_bits(m)), raw[m] / 12.0f) << "magnitude " << m;
    EXPECT_EQ(bits_float(fp4_dequant_bits(m + 8)), -(raw[m] / 12.0f));
  }
  EXPECT_TRUE(std::signbit(bits_float(fp4_dequant_bits(8))));
  EXPECT_FALSE(std::signbit(bits_float(fp4_quant_map_bits(8))));
  // Rank order is value order.
  for (int r = 1; r < 8; ++r)
    EXPECT_LT(bits_float(fp4_magnitude_bits(static_cast<int>(fp4_magnitude_of_rank(r - 1)))),
              bits_float(fp4_magnitude_bits(static_cast<int>(fp4_magnitude_of_rank(r)))));
}

TEST(QuantFormats, Fp4ThresholdsMatchDecimals) {
  const float decimals[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
  for (int k = 0; k < 7; ++k) EXPECT_EQ(bits_float(fp4_threshold_bits(k)), decimals[k]) << "threshold " << k;
}

TEST(QuantFormats, Fp4ScalarCasesTV8) {
  EXPECT_EQ(fp4_quantize_scaled(1e-3f), 0u);
  EXPECT_EQ(fp4_quantize_scaled(-1e-3f), 8u);
  EXPECT_EQ(fp4_quantize_scaled(-0.0f), 0u);
  EXPECT_EQ(fp4_quantize_scaled(0.583333f), 5u);
  EXPECT_EQ(fp4_quantize_scaled(0.5833333f), 2u);
  EXPECT_EQ(fp4_quantize_scaled(0.0026041667f), 0u);
  EXPECT_EQ(fp4_quantize_scaled(0.00260418f), 1u);
  EXPECT_EQ(fp4_quantize_scaled(NAN), 0u);
  EXPECT_EQ(nf4_quantize_scaled(NAN), 0u);
  EXPECT_EQ(nf4_quantize_scaled(5.0f), 15u);
  EXPECT_EQ(nf4_quantize_scaled(-5.0f), 0u);
}

TEST(QuantFormats, SignedDynamicMapShape) {
  EXPECT_EQ(bits_float(signed_dynamic_map_bits(0)), -0.992968738079071f);
  EXPECT_EQ(bits_float(signed_dynamic_map_bits(254)), 0.992968738079071f);
  EXPECT_EQ(bits_float(signed_dynamic_map_bits(128)), 5.500000384017767e-07f);
  EXPECT_EQ(bits_float(signed_dynamic_map_bits(126)), -5.500000384017767e-07f);
  for (int i = 1; i < kDynamicMapSize; ++i)
    EXPECT_LT(bits_float(signed_dynamic_map_bits(i - 1)), bits_float(signed_dynamic_map_bits(i))) << i;
  // Symmetric around index 127 except the lone 1.0 at 255.
  for (int i = 0; i < 127; ++i)
    EXPECT_EQ(bits_float(signed_dynamic_map_bits(i)), -bits_float(signed_dynamic_map_bits(254 - i))) << i;
}

TEST(QuantFormats, EightBitSearchTiesGoEvenTV10) {
  float map[kDynamicMapSize];
  for (int i = 0; i < kDynamicMapSize; ++i) map[i] = bits_float(signed_dynamic_map_bits(i));
  for (int i = 0; i < 255; ++i) {
    float midpoint = (map[i] + map[i + 1]) * 0.5f;
    uint32_t expected = static_cast<uint32_t>(i % 2 == 0 ? i : i + 1);
    EXPECT_EQ(quantize_8bit_search(map, midpoint), expected) << "midpoint " << i;
    // Off the tie, plain nearest.
    EXPECT_EQ(quantize_8bit_search(map, down(midpoint)), static_cast<uint32_t>(i)) << "below midpoint " << i;
    EXPECT_EQ(quantize_8bit_search(map, up(midpoint)), static_cast<uint32_t>(i + 1)) << "above midpoint " << i;
  }
  EXPECT_EQ(quantize_8bit_search(map, 1.0f), 255u);
  EXPECT_EQ(quantize_8bit_search(map, -1.0f), 0u);  // no -1 in the map: the nearest is code 0
}
