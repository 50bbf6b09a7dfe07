// The training ops on the CPU backend: every case against its double-precision reference, a
// central-difference check of every backward, and packed attention against separate sequences.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "backend_backward_cases.h"
#include "nibble/quant/quantize.h"

namespace nibble::test {
namespace {

class CpuBackward : public ::testing::TestWithParam<size_t> {};

TEST_P(CpuBackward, MatchesDoubleReference) {
  const OpCase& op_case = backend_backward_cases()[GetParam()];
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << op_case.name << ", seed " << seed);
  std::mt19937_64 rng(seed);
  Tensors inputs = make_inputs(op_case, rng);
  std::unique_ptr<Backend> backend = make_cpu_backend();
  Values out = run_on_backend(op_case, *backend, inputs);
  Values ref = op_case.reference(inputs);
  ASSERT_EQ(out.size(), ref.size());
  for (size_t o = 0; o < out.size(); ++o)
    EXPECT_LE(relative_error(out[o], ref[o]), op_case.bound) << "output " << o << "; bound: " << op_case.bound_origin;
}

INSTANTIATE_TEST_SUITE_P(Cases, CpuBackward, ::testing::Range<size_t>(0, backend_backward_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return backend_backward_cases()[info.param].name;
                         });

// ---- finite differences ----------------------------------------------------------------------
// Every backward is checked as the gradient of a scalar projection F = <dy, f(inputs)> with a
// random dy, by central differences in F32: (F(x + h e_i) - F(x - h e_i)) / 2h at 12 random
// coordinates of each differentiated input. Inputs are N(0, 1) and F sums a few hundred terms,
// so with h = 1e-2 the truncation error is O(h^2) ~ 1e-4 and the f32 rounding of F, ~ (terms *
// eps_f32 * |F|) / h, is ~ 1e-3 of a typical gradient: the bound is 1e-2 of the gradient's rms.
constexpr double kStep = 1e-2;
constexpr double kFdBound = 1e-2;

Tensor randn(const Shape& shape, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> draw(0.0, scale);
  Tensor t = Tensor::empty(shape, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = static_cast<float>(draw(rng));
  return t;
}

double project(const Tensor& dy, const Tensor& y) {
  double sum = 0;
  for (int64_t i = 0; i < y.numel(); ++i) sum += static_cast<double>(dy.data_as<float>()[i]) * y.data_as<float>()[i];
  return sum;
}

// grads[j] is the analytic gradient of F with respect to inputs[wrt[j]].
void check_finite_differences(Tensors inputs, const std::function<double(const Tensors&)>& F,
                              const std::vector<Tensor>& grads, const std::vector<size_t>& wrt) {
  std::mt19937_64 rng(7);
  for (size_t j = 0; j < wrt.size(); ++j) {
    Tensor& x = inputs[wrt[j]];
    const float* g = grads[j].data_as<float>();
    double rms = 0;
    for (int64_t i = 0; i < x.numel(); ++i) rms += static_cast<double>(g[i]) * g[i];
    rms = std::sqrt(rms / x.numel());
    ASSERT_GT(rms, 0.0) << "input " << wrt[j] << ": an all-zero gradient would prove nothing";
    std::uniform_int_distribution<int64_t> pick(0, x.numel() - 1);
    for (int n = 0; n < 12; ++n) {
      const int64_t i = pick(rng);
      float* value = x.data_as<float>() + i;
      const float saved = *value;
      *value = saved + static_cast<float>(kStep);
      const double up = F(inputs);
      *value = saved - static_cast<float>(kStep);
      const double down = F(inputs);
      *value = saved;
      const double numeric = (up - down) / (2 * kStep);
      EXPECT_LE(std::abs(numeric - g[i]), kFdBound * rms)
          << "input " << wrt[j] << " element " << i << ": numeric " << numeric << ", backward " << g[i];
    }
  }
}

TEST(CpuBackwardFiniteDifferences, RmsNorm) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(1);
  const int64_t T = 3, C = 40;
  const float eps = 1e-5f;
  Tensors in = {randn({T, C}, rng), randn({C}, rng, 0.2), randn({T, C}, rng)};
  for (int64_t i = 0; i < C; ++i) in[1].data_as<float>()[i] += 1.0f;
  auto F = [&](const Tensors& x) {
    Tensor y = Tensor::empty({T, C}, DType::f32);
    b->rmsnorm_forward(y, x[0], x[1], eps);
    return project(x[2], y);
  };
  Tensor dx = Tensor::empty({T, C}, DType::f32);
  b->rmsnorm_backward(dx, in[2], in[0], in[1], nullptr, eps);
  check_finite_differences(in, F, {dx}, {0});
}

TEST(CpuBackwardFiniteDifferences, Rope) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(2);
  const int64_t T = 5, H = 2, KVH = 1, D = 16, P = 32;
  RopeTable table = rope_table_build(RopeConfig{}, D, P, Device::cpu);
  Tensor pos = Tensor::empty({T}, DType::i32);
  for (int64_t t = 0; t < T; ++t) pos.data_as<int32_t>()[t] = static_cast<int32_t>(3 * t + 1);
  Tensors in = {randn({T, H, D}, rng), randn({T, KVH, D}, rng), randn({T, H, D}, rng), randn({T, KVH, D}, rng)};
  auto F = [&](const Tensors& x) {
    Tensor q = x[0].to(Device::cpu), k = x[1].to(Device::cpu);
    b->rope_forward(q, k, pos, table);
    return project(x[2], q) + project(x[3], k);
  };
  Tensor dq = in[2].to(Device::cpu), dk = in[3].to(Device::cpu);
  b->rope_backward(dq, dk, pos, table);
  check_finite_differences(in, F, {dq, dk}, {0, 1});
}

TEST(CpuBackwardFiniteDifferences, PackedAttention) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(3);
  const int64_t T = 8, H = 4, KVH = 2, D = 8;
  Tensor ids = packed_ids({3, 5}, Device::cpu);
  Tensors in = {randn({T, H, D}, rng), randn({T, KVH, D}, rng), randn({T, KVH, D}, rng), randn({T, H, D}, rng)};
  auto F = [&](const Tensors& x) {
    Tensor out = Tensor::empty({T, H, D}, DType::f32);
    b->attention_packed_forward(out, nullptr, x[0], x[1], x[2], ids);
    return project(x[3], out);
  };
  Tensor out = Tensor::empty({T, H, D}, DType::f32), lse = Tensor::empty({H, T}, DType::f32);
  b->attention_packed_forward(out, &lse, in[0], in[1], in[2], ids);
  Tensor dq = Tensor::empty({T, H, D}, DType::f32), dk = Tensor::empty({T, KVH, D}, DType::f32);
  Tensor dv = Tensor::empty({T, KVH, D}, DType::f32);
  b->attention_packed_backward(dq, dk, dv, in[3], in[0], in[1], in[2], out, lse, ids);
  check_finite_differences(in, F, {dq, dk, dv}, {0, 1, 2});
}

TEST(CpuBackwardFiniteDifferences, SwiGlu) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(4);
  const Shape shape{4, 30};
  Tensors in = {randn(shape, rng, 2.0), randn(shape, rng), randn(shape, rng)};  // gate, up, dy
  auto F = [&](const Tensors& x) {
    Tensor y = Tensor::empty(shape, DType::f32);
    b->swiglu_forward(y, x[0], x[1]);
    return project(x[2], y);
  };
  Tensor dgate = Tensor::empty(shape, DType::f32), dup = Tensor::empty(shape, DType::f32);
  b->swiglu_backward(dgate, dup, in[2], in[0], in[1]);
  check_finite_differences(in, F, {dgate, dup}, {0, 1});
}

TEST(CpuBackwardFiniteDifferences, Linear16And4Bit) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(5);
  const int64_t T = 4, K = 64, N = 24;
  Tensors in = {randn({T, K}, rng), randn({N, K}, rng, 0.1), randn({T, N}, rng)};
  QuantizedWeight w4 = quantize_4bit(in[1], QuantConfig{});
  Tensor workspace = Tensor::empty({N, K}, DType::f32);
  for (bool four_bit : {false, true}) {
    SCOPED_TRACE(four_bit ? "4-bit" : "16-bit");
    auto F = [&](const Tensors& x) {
      Tensor y = Tensor::empty({T, N}, DType::f32);
      if (four_bit)
        b->linear_4bit_forward(y, x[0], w4, nullptr, workspace);
      else
        b->linear_forward(y, x[0], x[1], nullptr);
      return project(x[2], y);
    };
    Tensor dx = Tensor::empty({T, K}, DType::f32);
    if (four_bit)
      b->linear_4bit_backward(dx, in[2], w4, workspace);
    else
      b->linear_backward(dx, in[2], in[1]);
    check_finite_differences(in, F, {dx}, {0});
  }
}

// LoRA through gemm: y = s * (x A^T) B^T; dh = dy B, dA = s * dh^T x, dB = s * dy^T h, dx = s * dh A.
TEST(CpuBackwardFiniteDifferences, LoraThroughGemm) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(6);
  const int64_t T = 5, K = 12, N = 10, R = 4;
  const float s = 2.0f;
  Tensors in = {randn({T, K}, rng), randn({R, K}, rng), randn({N, R}, rng), randn({T, N}, rng)};
  auto F = [&](const Tensors& x) {
    Tensor h = Tensor::empty({T, R}, DType::f32), y = Tensor::empty({T, N}, DType::f32);
    b->gemm(h, x[0], false, x[1], true, 1.0f, 0.0f);
    b->gemm(y, h, false, x[2], true, s, 0.0f);
    return project(x[3], y);
  };
  Tensor h = Tensor::empty({T, R}, DType::f32), dh = Tensor::empty({T, R}, DType::f32);
  Tensor dA = Tensor::empty({R, K}, DType::f32), dB = Tensor::empty({N, R}, DType::f32);
  Tensor dx = Tensor::empty({T, K}, DType::f32);
  b->gemm(h, in[0], false, in[1], true, 1.0f, 0.0f);
  b->gemm(dh, in[3], false, in[2], false, 1.0f, 0.0f);
  b->gemm(dA, dh, true, in[0], false, s, 0.0f);
  b->gemm(dB, in[3], true, h, false, s, 0.0f);
  b->gemm(dx, dh, false, in[1], false, s, 0.0f);
  check_finite_differences(in, F, {dx, dA, dB}, {0, 1, 2});
}

TEST(CpuBackwardFiniteDifferences, CrossEntropyMean) {
  auto b = make_cpu_backend();
  std::mt19937_64 rng(8);
  const int64_t T = 6, V = 20;
  Tensor labels = Tensor::empty({T}, DType::i32);
  const int32_t values[T] = {3, -100, 19, 0, 7, -100};
  for (int64_t t = 0; t < T; ++t) labels.data_as<int32_t>()[t] = values[t];
  const float scale = 1.0f / 4;  // four counted tokens: torch's reduction="mean"
  Tensors in = {randn({T, V}, rng, 2.0)};
  auto F = [&](const Tensors& x) {
    Tensor losses = Tensor::empty({T}, DType::f32);
    b->cross_entropy(losses, nullptr, x[0], labels, scale);
    double sum = 0;
    for (int64_t t = 0; t < T; ++t) sum += losses.data_as<float>()[t];
    return sum * scale;
  };
  Tensor losses = Tensor::empty({T}, DType::f32), dlogits = Tensor::empty({T, V}, DType::f32);
  b->cross_entropy(losses, &dlogits, in[0], labels, scale);
  check_finite_differences(in, F, {dlogits}, {0});
}

TEST(CpuBackward, PackedAttentionEqualsSeparateSequences) {
  auto b = make_cpu_backend();
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_safetensors_name(dt));
    // Same loops over the same keys in the same order: identical.
    check_packed_equals_separate(*b, dt, 0.0);
  }
}

TEST(CpuBackward, RejectsBadArguments) {
  auto b = make_cpu_backend();
  check_backward_rejects_bad_arguments(*b);
}

}  // namespace
}  // namespace nibble::test
