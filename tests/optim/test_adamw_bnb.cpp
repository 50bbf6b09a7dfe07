// paged_adamw_32bit (bitsandbytes' rule) against its formula evaluated in double on the CPU.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "nibble/optim/optimizer.h"
#include "optim_test_util.h"

namespace nibble {
namespace {

using test::kEps32;

// bnb-format.md 5, in double: update from the new states, then p *= 1 - lr*wd. bitsandbytes
// receives its hyperparameters as float32, so the reference starts from the float32 values.
TEST(AdamwBnb, MatchesFormulaInDouble) {
  const int64_t n = 1000;
  const int steps = 10;
  AdamwHyper hyper{0.9, 0.999, 1e-8, 0.1};
  const double b1 = static_cast<float>(hyper.beta1), b2 = static_cast<float>(hyper.beta2);
  const double eps = static_cast<float>(hyper.eps), wd = static_cast<float>(hyper.weight_decay);
  Tensor p = test::random_tensor({n}, 1);
  Tensor g = Tensor::zeros({n}, DType::f32);
  AdamwOptimizer opt(AdamwVariant::paged_adamw_32bit, hyper, {{"w", p, g}});
  std::vector<double> rp(p.data_as<float>(), p.data_as<float>() + n), rm(n, 0.0), rv(n, 0.0);
  std::vector<double> mag_m(n, 0.0), bound_p(n, 0.0);
  for (int t = 1; t <= steps; ++t) {
    const double lr = static_cast<float>(1e-2 * t);  // bnb's kernel gets lr as float32
    Tensor gt = test::random_tensor({n}, 100 + t, t % 2 ? 1.0f : 1e-7f);  // tiny gradients make eps matter
    std::memcpy(g.data(), gt.data(), n * 4);
    opt.step(lr);
    auto state = opt.state_tensors();
    const float* got_p = p.data_as<float>();
    const float* got_m = state[1].second.data_as<float>();
    const float* got_v = state[2].second.data_as<float>();
    const double c1 = 1.0 - std::pow(b1, t), c2 = 1.0 - std::pow(b2, t);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = gt.data_as<float>()[i];
      rm[i] = b1 * rm[i] + (1 - b1) * gi;
      rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
      mag_m[i] = b1 * mag_m[i] + (1 - b1) * std::fabs(gi);
      const double denom = std::sqrt(rv[i] / c2) + eps;
      const double update = -lr * (rm[i] / c1) / denom;
      const double before = rp[i];
      rp[i] = (rp[i] + update) * (1 - lr * wd);
      // Bounds: each float32 operation rounds by <= eps/2 relative. m: 3 roundings a step on
      // terms of total size <= mag_m, carried forward scaled by b1 < 1, so <= 3 t eps mag_m. v
      // has no cancellation: <= 3 t eps v. The update (m/denom times a step size made of ~6
      // roundings, c1/c2 via powf within a few ulps) inherits m's absolute error over denom and
      // v's relative error halved, plus ~16 eps of its own; p adds 2 roundings of |p|. They
      // accumulate over steps since p carries its error forward.
      const double err_m = 3 * t * kEps32 * mag_m[i];
      const double err_v = 3 * t * kEps32 * rv[i];
      ASSERT_LE(std::fabs(got_m[i] - rm[i]), err_m + 1e-45) << "m[" << i << "] step " << t;
      ASSERT_LE(std::fabs(got_v[i] - rv[i]), err_v + 1e-45) << "v[" << i << "] step " << t;
      const double err_update = lr / c1 * err_m / denom + std::fabs(update) * (1.5 * t * kEps32 + 16 * kEps32);
      bound_p[i] += err_update + 4 * kEps32 * std::fabs(before);
      ASSERT_LE(std::fabs(got_p[i] - rp[i]), bound_p[i]) << "p[" << i << "] step " << t;
    }
  }
}

// The two rules differ only in when the decay applies: torch decays p before adding the update,
// bnb after, so with wd = 0 they agree to rounding and with wd > 0 by lr*wd*|update| exactly.
TEST(AdamwBnb, DecayOrderDiffersFromTorch) {
  const AdamwHyper hyper{0.9, 0.999, 1e-8, 0.5};
  AdamwStepScalars torch_s = adamw_step_scalars(AdamwRule::torch, hyper, 0.1, 1);
  AdamwStepScalars bnb_s = adamw_step_scalars(AdamwRule::bnb, hyper, 0.1, 1);
  float p1 = 2.0f, m1 = 0.0f, v1 = 0.0f, p2 = 2.0f, m2 = 0.0f, v2 = 0.0f;
  adamw_torch_element(torch_s, p1, 1.0f, m1, v1);  // (2 * 0.95) - 0.1 = 1.8
  adamw_bnb_element(bnb_s, p2, 1.0f, m2, v2);      // (2 - 0.1) * 0.95 = 1.805
  EXPECT_NEAR(p1, 1.8, 1e-6);   // bound: a few float32 ulps of 2
  EXPECT_NEAR(p2, 1.805, 1e-6);
}

TEST(AdamwVariantNames, ParseAndSizes) {
  EXPECT_EQ(parse_adamw_variant("adamw_torch"), AdamwVariant::adamw);
  EXPECT_EQ(parse_adamw_variant("paged_adamw_8bit"), AdamwVariant::paged_adamw_8bit);
  EXPECT_THROW(parse_adamw_variant("sgd"), Error);
  EXPECT_EQ(adamw_variant_rule(AdamwVariant::adamw), AdamwRule::torch);
  EXPECT_EQ(adamw_variant_rule(AdamwVariant::paged_adamw_32bit), AdamwRule::bnb);
  // 8 bytes an element, or 2 codes + 2 absmax per 256 block.
  EXPECT_EQ(adamw_state_bytes(4095, AdamwVariant::paged_adamw_8bit), 4095 * 8);
  EXPECT_EQ(adamw_state_bytes(4097, AdamwVariant::paged_adamw_8bit), 2 * (4097 + 17 * 4));
  EXPECT_EQ(adamw_state_bytes(4097, AdamwVariant::adamw), 4097 * 8);
}

}  // namespace
}  // namespace nibble
