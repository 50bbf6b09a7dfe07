#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "lora_test_util.h"
#include "nibble/core/half.h"
#include "nibble/lora/lora_adapter.h"

using namespace nibble;
using nibble::test::small_shape;

namespace {

struct Moments {
  double mean = 0, mean_square = 0, max_abs = 0;
  int64_t n = 0;
};

Moments moments(const Tensor& t) {
  Moments m;
  m.n = t.numel();
  for (int64_t i = 0; i < m.n; ++i) {
    const double x = t.data_as<float>()[i];
    m.mean += x;
    m.mean_square += x * x;
    m.max_abs = std::fmax(m.max_abs, std::fabs(x));
  }
  m.mean /= m.n;
  m.mean_square /= m.n;
  return m;
}

// x ~ U(-b, b): E[x] = 0 with sd b/sqrt(3), E[x^2] = b^2/3 with sd of x^2 = b^2 sqrt(1/5 - 1/9).
// Means of n draws get sd / sqrt(n); 6 standard errors fail a correct init with probability
// ~2e-9 per check.
void expect_uniform(const Tensor& t, double bound, const std::string& what) {
  const Moments m = moments(t);
  const double se = 6.0 / std::sqrt(static_cast<double>(m.n));
  EXPECT_LE(m.max_abs, bound) << what;
  EXPECT_GT(m.max_abs, 0.9 * bound) << what;  // P(all n < 0.9 b) = 0.9^n, below 1e-90 for n >= 2048
  EXPECT_NEAR(m.mean, 0.0, se * bound / std::sqrt(3.0)) << what;
  EXPECT_NEAR(m.mean_square, bound * bound / 3.0, se * bound * bound * std::sqrt(1.0 / 5 - 1.0 / 9)) << what;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

}  // namespace

TEST(LoraInit, KaimingUniformAAndZeroB) {
  LoraConfig c;
  c.r = 32;  // 32 x 64 = 2048 draws per A at least
  const LoraAdapter adapter = lora_init(c, small_shape(), 1234);
  ASSERT_EQ(adapter.linears.size(), 14u);
  for (const LoraLinear& l : adapter.linears) {
    EXPECT_EQ(l.a.shape(), Shape({32, l.target.in}));
    EXPECT_EQ(l.b.shape(), Shape({l.target.out, 32}));
    EXPECT_EQ(l.a.dtype(), DType::f32);
    EXPECT_EQ(l.scaling, 8.0 / 32);
    expect_uniform(l.a, 1.0 / std::sqrt(static_cast<double>(l.target.in)), l.target.module);
    EXPECT_EQ(moments(l.b).max_abs, 0.0) << l.target.module;
  }
  // Per layer (in + out) summed over q, k, v, o, gate, up, down = 128 + 96 + 96 + 128 + 160 * 3.
  EXPECT_EQ(adapter.parameter_count(), 2 * 32 * 928);
}

TEST(LoraInit, GaussianAndNoOpFreeInit) {
  LoraConfig c;
  c.r = 32;
  c.init_lora_weights = LoraInit::gaussian;
  for (const LoraLinear& l : lora_init(c, small_shape(), 5).linears) {
    // N(0, s^2), s = 1/r: E[x^2] = s^2 with sd s^2 sqrt(2); mean sd s.
    const Moments m = moments(l.a);
    const double s = 1.0 / 32, se = 6.0 / std::sqrt(static_cast<double>(m.n));
    EXPECT_NEAR(m.mean, 0.0, se * s);
    EXPECT_NEAR(m.mean_square, s * s, se * s * s * std::sqrt(2.0));
    EXPECT_EQ(moments(l.b).max_abs, 0.0);
  }
  c.init_lora_weights = LoraInit::none;
  for (const LoraLinear& l : lora_init(c, small_shape(), 5).linears) {
    expect_uniform(l.b, 1.0 / std::sqrt(32.0), l.target.module + " B");
  }
}

TEST(LoraInit, DeterministicPerTensorStreams) {
  LoraConfig c;
  c.r = 4;
  c.init_lora_weights = LoraInit::none;
  const LoraAdapter one = lora_init(c, small_shape(), 99);
  const LoraAdapter two = lora_init(c, small_shape(), 99);
  const LoraAdapter other_seed = lora_init(c, small_shape(), 100);
  for (size_t i = 0; i < one.linears.size(); ++i) {
    EXPECT_TRUE(same_bits(one.linears[i].a, two.linears[i].a));
    EXPECT_TRUE(same_bits(one.linears[i].b, two.linears[i].b));
    EXPECT_FALSE(same_bits(one.linears[i].a, other_seed.linears[i].a));
  }
  // q_proj of layer 0 and of layer 1 have the same shape but their own streams.
  EXPECT_FALSE(same_bits(one.linears[0].a, one.linears[7].a));
  // A tensor's values do not depend on which other modules are targeted.
  LoraConfig only_v = c;
  only_v.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, {"v_proj"}, {}};
  const LoraAdapter v = lora_init(only_v, small_shape(), 99);
  ASSERT_EQ(v.linears.size(), 2u);
  EXPECT_TRUE(same_bits(v.linears[1].a, one.find("model.layers.1.self_attn.v_proj")->a));
  EXPECT_TRUE(same_bits(v.linears[1].b, one.find("model.layers.1.self_attn.v_proj")->b));
  EXPECT_EQ(one.find("model.layers.2.self_attn.v_proj"), nullptr);
}

TEST(LoraInit, ComputeCopiesRoundOnce) {
  LoraConfig c;
  c.r = 4;
  const LoraAdapter adapter = lora_init(c, small_shape(), 3);
  const LoraLinear& l = adapter.linears[0];
  const LoraComputeCopy bf16 = lora_compute_copy(l, DType::bf16);
  ASSERT_EQ(bf16.a.dtype(), DType::bf16);
  for (int64_t i = 0; i < l.a.numel(); ++i)
    EXPECT_EQ(bf16.a.data_as<bf16_t>()[i].bits, float_to_bf16(l.a.data_as<float>()[i]).bits);
  EXPECT_TRUE(same_bits(lora_compute_copy(l, DType::f32).a, l.a));
}
