// The torch.mean emulation on cases whose answer follows by hand: the float reciprocal of
// MeanOps, the shape of ATen's addition tree, and (with inputs whose every partial sum is exact,
// so any order gives the same sum) that each element is added exactly once, head, body and tail,
// for single-CTA and multi-CTA launches. Bit-exactness against real torch is checked on the GPU
// machine by tests/golden/check_torch_mean.py and the check_torch_mean tool.
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/quant/torch_mean.h"

using namespace nibble;

namespace {

// Small integers (1..50): every partial sum of up to ~300k of them is an exact float.
std::vector<float> small_integers(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  uint32_t state = 12345u;
  for (auto& v : x) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(1 + (state >> 8) % 50);
  }
  return x;
}

double exact_sum(const std::vector<float>& x, size_t begin = 0) {
  double sum = 0.0;
  for (size_t i = begin; i < x.size(); ++i) sum += x[i];
  return sum;
}

float reciprocal_mean(double exact, int64_t n) {
  return static_cast<float>(exact) * (1.0f / static_cast<float>(n));
}

}  // namespace

TEST(TorchMean, SingleElementIsItself) {
  float x = 0.0371f;
  EXPECT_EQ(torch_cuda_mean_f32(&x, 1), x);
}

TEST(TorchMean, EmptyIsNaN) { EXPECT_TRUE(std::isnan(torch_cuda_mean_f32(nullptr, 0))); }

TEST(TorchMean, FourElementsFollowTheWarpTree) {
  // n = 4 runs 4 threads, one element each, then shuffle-down. Offsets 2, 1 (PyTorch >= 2.10):
  // (x0 + x2) + (x1 + x3) = 1 + 2^-23. Offsets 1, 2: (x0 + x1) + (x2 + x3) = 1 + 2^-24, which
  // rounds to 1 (a tie, to even); so does the left-to-right sum.
  const float tiny = std::ldexp(1.0f, -24);
  const float x[4] = {1.0f, tiny, 0.0f, tiny};
  EXPECT_EQ(torch_cuda_mean_f32(x, 4), (1.0f + std::ldexp(1.0f, -23)) * 0.25f);
  TorchMeanDevice doubling;
  doubling.warp_offsets_decreasing = false;
  EXPECT_EQ(torch_cuda_mean_f32(x, 4, doubling), 0.25f);
}

TEST(TorchMean, ThirtyOneUsesTheFloatReciprocal) {
  // Multiples of 2^-20 near 0.05 (absmax-like): the sum 1612436 * 2^-20 is exact in any order.
  // sum * float(1/31) and sum / 31 round to neighbouring floats; MeanOps multiplies.
  std::vector<float> x(31);
  for (int i = 0; i < 31; ++i) x[i] = std::ldexp(static_cast<float>(52000 + (i < 30 ? i : 1)), -20);
  const double exact = exact_sum(x);
  const float sum = static_cast<float>(exact);
  ASSERT_EQ(static_cast<double>(sum), exact);
  const float by_reciprocal = sum * (1.0f / 31.0f);
  const float by_division = sum / 31.0f;
  ASSERT_NE(by_reciprocal, by_division);
  EXPECT_EQ(torch_cuda_mean_f32(x.data(), 31), by_reciprocal);
}

TEST(TorchMean, EveryElementCountedOnceAcrossLaunchShapes) {
  // 1..2100 covers the strided path (< 128), the vectorized path with every tail length and
  // block widths 32..512; the larger sizes split over 16..~40 CTAs (n > 130560).
  std::vector<int64_t> sizes;
  for (int64_t n = 1; n <= 2100; ++n) sizes.push_back(n);
  for (int64_t n : {7680, 7681, 130560, 130561, 131075, 200003, 262144, 300001}) sizes.push_back(n);
  for (int64_t n : sizes) {
    const std::vector<float> x = small_integers(n);
    ASSERT_EQ(torch_cuda_mean_f32(x.data(), n), reciprocal_mean(exact_sum(x), n)) << "n = " << n;
  }
}

TEST(TorchMean, MisalignedPointerStillCountsEveryElement) {
  // The head before the first 16-byte boundary goes to threads shift..3 of CTA 0.
  for (int shift = 1; shift < 4; ++shift) {
    TorchMeanDevice device;
    device.misalignment = shift;
    for (int64_t n : {128, 129, 130, 131, 1000, 2051, 200003}) {
      const std::vector<float> x = small_integers(n);
      ASSERT_EQ(torch_cuda_mean_f32(x.data(), n, device), reciprocal_mean(exact_sum(x), n))
          << "n = " << n << ", shift = " << shift;
    }
  }
}

TEST(TorchMean, SmallerGpuOnlyChangesHugeInputs) {
  // The CTA count is clamp(SMs * 4, ceil(v / 256), ceil(v / 16)) with v = ceil(n / 512): below
  // n = 16 * 456 * 512 a 114-SM GPU hits the same upper bound as a 132-SM one.
  TorchMeanDevice pcie;
  pcie.multiprocessor_count = 114;
  std::vector<float> x(3670016);
  uint32_t state = 7u;
  for (auto& v : x) {
    state = state * 1664525u + 1013904223u;
    v = 0.03f + static_cast<float>(state >> 8) * 1e-9f;
  }
  EXPECT_EQ(torch_cuda_mean_f32(x.data(), static_cast<int64_t>(x.size()), pcie),
            torch_cuda_mean_f32(x.data(), static_cast<int64_t>(x.size())));
}
