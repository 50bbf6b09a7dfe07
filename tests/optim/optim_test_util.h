// Helpers of the optim tests: random float32 tensors and ulp-scaled comparisons.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "nibble/core/tensor.h"

namespace nibble::test {

constexpr double kEps32 = std::numeric_limits<float>::epsilon();  // 2^-23

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  float* x = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) x[i] = normal(rng);
  return t;
}

inline std::vector<float> to_vector(const Tensor& t) {
  Tensor c = t.to(Device::cpu);
  const float* x = c.data_as<float>();
  return std::vector<float>(x, x + c.numel());
}

}  // namespace nibble::test
