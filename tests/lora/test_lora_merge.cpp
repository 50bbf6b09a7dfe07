#include <cfloat>
#include <cmath>

#include <gtest/gtest.h>

#include "lora_test_util.h"
#include "nibble/core/half.h"
#include "nibble/core/rng.h"
#include "nibble/lora/lora_merge.h"
#include "nibble/quant/quantize.h"

using namespace nibble;
using nibble::test::small_shape;

namespace {

Tensor random_weight(int64_t n, int64_t k, uint64_t seed) {
  Tensor w = Tensor::empty({n, k}, DType::f32);
  Rng(seed).fill_normal(w.data_as<float>(), w.numel(), 0.0f, 0.02f);
  return w;
}

LoraLinear non_trivial_adapter(const std::string& module) {
  LoraConfig c;
  c.r = 8;
  c.lora_alpha = 16;
  c.init_lora_weights = LoraInit::none;  // B != 0, so the merge changes the weight
  LoraAdapter a = lora_init(c, small_shape(), 42);
  return *a.find(module);
}

}  // namespace

// Against a plain double-precision loop. Origin of the bound: our fp32 sum over R terms errs by at
// most R u sum_r |B A| (u = FLT_EPSILON / 2), the scaling and the add each round once more (u |x|):
// FLT_EPSILON * (R * scaling * sum|B A| + |delta| + |W'|) covers all of it with room.
TEST(LoraMerge, MatchesPlainLoop) {
  const LoraLinear l = non_trivial_adapter("model.layers.1.mlp.down_proj");
  const int64_t N = l.target.out, K = l.target.in, R = l.target.r;
  const Tensor w = random_weight(N, K, 7);
  const Tensor merged = lora_merge(w, l, DType::f32);
  const Tensor merged_bf16 = lora_merge(w, l, DType::bf16);
  ASSERT_EQ(merged.shape(), Shape({N, K}));
  int64_t changed = 0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      double delta = 0, magnitude = 0;
      for (int64_t r = 0; r < R; ++r) {
        const double p = double(l.b.data_as<float>()[n * R + r]) * l.a.data_as<float>()[r * K + k];
        delta += p;
        magnitude += std::fabs(p);
      }
      delta *= l.scaling;
      const double want = w.data_as<float>()[n * K + k] + delta;
      const float got = merged.data_as<float>()[n * K + k];
      const double bound = FLT_EPSILON * (R * l.scaling * magnitude + std::fabs(delta) + std::fabs(want));
      ASSERT_LE(std::fabs(got - want), bound) << n << "," << k;
      changed += got != w.data_as<float>()[n * K + k];
      // bf16 output is the fp32 result rounded once.
      ASSERT_EQ(merged_bf16.data_as<bf16_t>()[n * K + k].bits, float_to_bf16(got).bits);
    }
  }
  EXPECT_GT(changed, N * K / 2);  // the reference is not the base weight itself
}

TEST(LoraMerge, ZeroBIsIdentityAndInputsAreChecked) {
  LoraConfig c;
  c.r = 4;
  const LoraLinear l = *lora_init(c, small_shape(), 1).find("model.layers.0.self_attn.q_proj");
  Tensor w = Tensor::empty({64, 64}, DType::bf16);
  for (int64_t i = 0; i < w.numel(); ++i) w.data_as<bf16_t>()[i] = float_to_bf16(0.01f * (i % 17) - 0.08f);
  const Tensor merged = lora_merge(w, l);
  ASSERT_EQ(merged.dtype(), DType::bf16);
  for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(merged.data_as<bf16_t>()[i].bits, w.data_as<bf16_t>()[i].bits);

  const std::string message = nibble::test::error_of([&] { lora_merge(Tensor::zeros({64, 32}, DType::f32), l); });
  EXPECT_NE(message.find("model.layers.0.self_attn.q_proj"), std::string::npos) << message;
  EXPECT_NE(message.find("expected [64, 64]"), std::string::npos) << message;
}

// A 4-bit base merges exactly as its fp32 dequantization does.
TEST(LoraMerge, FourBitBaseIsDequantizedFirst) {
  const LoraLinear l = non_trivial_adapter("model.layers.0.mlp.gate_proj");
  const Tensor w = random_weight(l.target.out, l.target.in, 11);
  const QuantizedWeight q = quantize_4bit(w, QuantConfig{});
  const Tensor want = lora_merge(dequantize_4bit(q, DType::f32), l, DType::bf16);
  const Tensor got = lora_merge_4bit(q, l);
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.data_as<bf16_t>()[i].bits, want.data_as<bf16_t>()[i].bits);
}
