// Gradient clipping with torch.nn.utils.clip_grad_norm_'s semantics, and zeroing.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "nibble/optim/grad_clip.h"
#include "nibble/core/half.h"
#include "optim_test_util.h"

namespace nibble {
namespace {

TEST(GradClip, ExactIntegersNormAndScale) {
  // 3-4-12-84 norm: sqrt(9 + 16 + 144 + 7056) = 85 exactly.
  Tensor a = Tensor::empty({2}, DType::f32);
  Tensor b = Tensor::empty({2}, DType::f32);
  a.data_as<float>()[0] = 3; a.data_as<float>()[1] = 4;
  b.data_as<float>()[0] = 12; b.data_as<float>()[1] = -84;
  EXPECT_EQ(grad_norm({a, b}), 85.0f);
  const float total = clip_grad_norm({a, b}, 1.0f);
  EXPECT_EQ(total, 85.0f);  // the norm before clipping, as torch returns it
  const float coef = 1.0f / (85.0f + 1e-6f);  // torch: max_norm / (total + 1e-6) in float32
  EXPECT_EQ(a.data_as<float>()[0], 3.0f * coef);
  EXPECT_EQ(b.data_as<float>()[1], -84.0f * coef);
}

TEST(GradClip, BelowMaxNormLeavesGradientsAlone) {
  Tensor a = test::random_tensor({100}, 9, 1e-3f);
  Tensor copy = a.to(Device::cpu);
  const float total = clip_grad_norm({a}, 1.0f);
  EXPECT_GT(total, 0.0f);
  EXPECT_LT(total, 1.0f);
  EXPECT_EQ(std::memcmp(a.data(), copy.data(), a.nbytes()), 0);
}

TEST(GradClip, RandomNormAgainstDoubleSum) {
  Tensor a = test::random_tensor({1000}, 10), b = test::random_tensor({33, 7}, 11, 5.0f);
  double sum = 0.0;
  for (const Tensor& t : {a, b})
    for (int64_t i = 0; i < t.numel(); ++i) sum += double(t.data_as<float>()[i]) * t.data_as<float>()[i];
  // One rounding of the double result to float32: half an ulp.
  EXPECT_LE(std::fabs(grad_norm({a, b}) - std::sqrt(sum)), 0.5 * test::kEps32 * std::sqrt(sum));
  clip_grad_norm({a, b}, 2.0f);
  // After clipping the norm is max_norm up to the float32 roundings of coef and the products.
  EXPECT_NEAR(grad_norm({a, b}), 2.0f, 4 * test::kEps32 * 2.0f);
}

TEST(GradClip, ZeroGrads) {
  Tensor a = test::random_tensor({10}, 12);
  zero_grads({a});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(float_bits(a.data_as<float>()[i]), 0u);
}

}  // namespace
}  // namespace nibble
