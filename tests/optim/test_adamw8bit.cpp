// paged_adamw_8bit: bitsandbytes' blockwise 8-bit states (bnb-format.md 5, 2.2-2.3).
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "nibble/optim/adamw_cpu.h"
#include "nibble/optim/dynamic_map.h"
#include "nibble/optim/optimizer.h"
#include "nibble/quant/formats.h"
#include "optim_test_util.h"

namespace nibble {
namespace {

// The rounding rule written independently of the binary search: over a sorted map, the code is
// the number of float32 midpoints (a + b) * 0.5f that s lies above, an exact tie counting as
// above when that moves s to the even index (bnb-format.md 2.3: nearest, ties to even).
uint32_t nearest_ties_even(const float* map, float s) {
  uint32_t code = 0;
  for (int k = 0; k < 255; ++k) {
    const float mid = (map[k] + map[k + 1]) * 0.5f;
    if (s > mid || (s == mid && (k + 1) % 2 == 0)) code = k + 1;
  }
  return code;
}

TEST(Adamw8bit, UnsignedMapIsSortedWithSpecEnds) {
  const float* map = optim_unsigned_map();
  for (int i = 1; i < 256; ++i) ASSERT_LT(map[i - 1], map[i]) << i;
  EXPECT_EQ(float_bits(map[1]), float_bits(3.2500003e-07f));
  EXPECT_EQ(float_bits(map[254]), float_bits(0.9964844f));
}

TEST(Adamw8bit, SearchEqualsNearestTiesEvenOnBothMaps) {
  for (const float* map : {optim_signed_map(), optim_unsigned_map()}) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int i = 0; i < 20000; ++i) {
      const float s = uniform(rng) * (i % 3 == 0 ? 1e-4f : 1.0f);
      ASSERT_EQ(quantize_8bit_search(map, s), nearest_ties_even(map, s)) << s;
    }
    for (int k = 0; k < 255; ++k) {  // every exact midpoint and its float neighbours
      const float mid = (map[k] + map[k + 1]) * 0.5f;
      for (float s : {mid, std::nextafter(mid, -2.0f), std::nextafter(mid, 2.0f)})
        ASSERT_EQ(quantize_8bit_search(map, s), nearest_ties_even(map, s)) << k;
    }
  }
}

// Three steps of a 5000-element tensor (the last block partial): after each, every code and
// absmax must be exactly what the formula + rounding rule give from the previous dequantized
// state, and p exactly the bnb 32-bit update computed from the unquantized new states.
TEST(Adamw8bit, StepIsDequantizeUpdateRequantizeExactly) {
  const int64_t n = 5000;
  const AdamwHyper hyper{0.9, 0.999, 1e-8, 0.01};
  Tensor p = test::random_tensor({n}, 3);
  Tensor g = Tensor::zeros({n}, DType::f32);
  AdamwOptimizer opt(AdamwVariant::paged_adamw_8bit, hyper, {{"w", p, g}});
  const float* map1 = optim_signed_map();
  const float* map2 = optim_unsigned_map();
  std::vector<uint8_t> c1(n, 0), c2(n, 0);
  std::vector<float> a1((n + 255) / 256, 0.0f), a2((n + 255) / 256, 0.0f);
  for (int t = 1; t <= 3; ++t) {
    Tensor gt = test::random_tensor({n}, 50 + t, 1e-2f);
    float* gx = gt.data_as<float>();
    gx[10] = -1e-30f;  // m a tiny negative: rounds to the 0 code, moved to 126 by the sign rule
    gx[11] = std::numeric_limits<float>::quiet_NaN();  // states reset to 0, p left alone
    std::memcpy(g.data(), gx, n * 4);
    std::vector<float> p_before(p.data_as<float>(), p.data_as<float>() + n);
    opt.step(1e-3);
    const AdamwStepScalars s = adamw_step_scalars(AdamwRule::bnb, hyper, 1e-3, t);
    std::vector<float> m(n), v(n), want_p(p_before);
    std::vector<float> new_a1(a1.size(), 0.0f), new_a2(a2.size(), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      m[i] = map1[c1[i]] * a1[i / 256];
      v[i] = map2[c2[i]] * a2[i / 256];
      if (std::isnan(gx[i])) {
        m[i] = v[i] = 0.0f;
      } else {
        adamw_bnb_states(s, gx[i], m[i], v[i]);
        adamw_bnb_param(s, want_p[i], m[i], v[i]);
      }
      new_a1[i / 256] = std::max(new_a1[i / 256], std::fabs(m[i]));
      new_a2[i / 256] = std::max(new_a2[i / 256], std::fabs(v[i]));
    }
    auto state = opt.state_tensors();
    ASSERT_EQ(state[1].first, "optimizer.w.exp_avg.codes");
    const uint8_t* got_c1 = state[1].second.data_as<uint8_t>();
    const float* got_a1 = state[2].second.data_as<float>();
    const uint8_t* got_c2 = state[3].second.data_as<uint8_t>();
    const float* got_a2 = state[4].second.data_as<float>();
    for (size_t b = 0; b < a1.size(); ++b) {
      ASSERT_EQ(float_bits(got_a1[b]), float_bits(new_a1[b])) << b;
      ASSERT_EQ(float_bits(got_a2[b]), float_bits(new_a2[b])) << b;
      ASSERT_GT(new_a1[b], 0.0f);
    }
    for (int64_t i = 0; i < n; ++i) {
      const float s1 = m[i] / new_a1[i / 256];
      uint32_t want1 = nearest_ties_even(map1, s1);
      if (std::signbit(map1[want1]) != std::signbit(m[i])) want1 = m[i] > 0.0f ? want1 + 1 : want1 - 1;
      ASSERT_EQ(got_c1[i], want1) << "m code " << i << " step " << t;
      ASSERT_EQ(got_c2[i], nearest_ties_even(map2, v[i] / new_a2[i / 256])) << "v code " << i << " step " << t;
      ASSERT_EQ(float_bits(p.data_as<float>()[i]), float_bits(want_p[i])) << "p " << i << " step " << t;
      // The state's quantization error: at most half the gap to the neighbouring code on its side
      // (nearest rounding), plus one sign-rule move for m codes; times absmax, plus an ulp for
      // the dequantizing product.
      const float deq = map2[got_c2[i]] * new_a2[i / 256];
      const int lo = got_c2[i] > 0 ? got_c2[i] - 1 : 0, hi = got_c2[i] < 255 ? got_c2[i] + 1 : 255;
      const double gap = std::max(map2[got_c2[i]] - map2[lo], map2[hi] - map2[got_c2[i]]) * 0.5 * new_a2[i / 256];
      ASSERT_LE(std::fabs(deq - v[i]), gap + test::kEps32 * std::fabs(deq)) << i;
    }
    EXPECT_EQ(got_c1[10], 126);
    EXPECT_EQ(got_c1[11], 127);  // state 0.0 exactly
    EXPECT_EQ(got_c2[11], 0);
    EXPECT_EQ(p.data_as<float>()[11], p_before[11]);
    std::memcpy(c1.data(), got_c1, n);
    std::memcpy(c2.data(), got_c2, n);
    std::memcpy(a1.data(), got_a1, a1.size() * 4);
    std::memcpy(a2.data(), got_a2, a2.size() * 4);
  }
}

TEST(Adamw8bit, SmallTensorsKeep32BitState) {
  Tensor p = test::random_tensor({4095}, 4);
  Tensor g = test::random_tensor({4095}, 5);
  Tensor p32 = p.to(Device::cpu);
  AdamwOptimizer opt8(AdamwVariant::paged_adamw_8bit, AdamwHyper{}, {{"w", p, g}});
  AdamwOptimizer opt32(AdamwVariant::paged_adamw_32bit, AdamwHyper{}, {{"w", p32, g}});
  for (int t = 0; t < 3; ++t) {
    opt8.step(1e-3);
    opt32.step(1e-3);
  }
  EXPECT_EQ(opt8.state_tensors()[1].first, "optimizer.w.exp_avg");
  EXPECT_EQ(std::memcmp(p.data(), p32.data(), p.nbytes()), 0);
}

}  // namespace
}  // namespace nibble
