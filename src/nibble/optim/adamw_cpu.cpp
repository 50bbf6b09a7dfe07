#include "nibble/optim/adamw_cpu.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "nibble/optim/dynamic_map.h"
#include "nibble/quant/formats.h"

namespace nibble {

AdamwStepScalars adamw_step_scalars(AdamwRule rule, const AdamwHyper& h, double lr, int64_t step) {
  AdamwStepScalars s{};
  s.apply_decay = h.weight_decay != 0.0;
  if (rule == AdamwRule::torch) {
    // torch/optim/adamw.py forms these as Python floats (double); ATen rounds each scalar to
    // float32 when it applies it to a float32 tensor.
    s.beta1 = static_cast<float>(h.beta1);
    s.beta2 = static_cast<float>(h.beta2);
    s.one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
    s.one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
    s.decay = static_cast<float>(1.0 - lr * h.weight_decay);
    const double bias1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
    const double bias2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
    s.step_size = static_cast<float>(-(lr / bias1));
    s.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
    s.eps = static_cast<float>(h.eps);
  } else {
    // bitsandbytes passes every hyperparameter to its kernel as float32 and computes there.
    const float lr32 = static_cast<float>(lr);
    const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
    s.beta1 = b1;
    s.beta2 = b2;
    s.one_minus_beta1 = 1.0f - b1;
    s.one_minus_beta2 = 1.0f - b2;
    s.decay = 1.0f - lr32 * static_cast<float>(h.weight_decay);
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(step));
    const float c2 = std::sqrt(1.0f - std::pow(b2, static_cast<float>(step)));
    s.step_size = -lr32 * c2 / c1;
    s.bias2_sqrt = 1.0f;
    s.eps = c2 * static_cast<float>(h.eps);
  }
  return s;
}

void adamw_update_cpu(AdamwRule rule, const AdamwStepScalars& s, float* p, const float* g, float* m, float* v,
                      int64_t n) {
  if (rule == AdamwRule::torch) {
    for (int64_t i = 0; i < n; ++i) adamw_torch_element(s, p[i], g[i], m[i], v[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) adamw_bnb_element(s, p[i], g[i], m[i], v[i]);
  }
}

namespace {

std::array<float, 256> make_map(bool is_signed) {
  std::array<float, 256> map{};
  for (int i = 0; i < 256; ++i)
    map[i] = bits_float(is_signed ? signed_dynamic_map_bits(i) : unsigned_dynamic_map_bits(i));
  return map;
}

}  // namespace

const float* optim_signed_map() {
  static const std::array<float, 256> map = make_map(true);
  return map.data();
}

const float* optim_unsigned_map() {
  static const std::array<float, 256> map = make_map(false);
  return map.data();
}

void adamw8bit_update_cpu(const AdamwStepScalars& s, float* p, const float* g, uint8_t* m_codes,
                          uint8_t* v_codes, float* absmax1, float* absmax2, int64_t n) {
  const float* map1 = optim_signed_map();
  const float* map2 = optim_unsigned_map();
  float m[kOptim8bitBlocksize];
  float v[kOptim8bitBlocksize];
  for (int64_t start = 0, block = 0; start < n; start += kOptim8bitBlocksize, ++block) {
    const int64_t count = std::min<int64_t>(kOptim8bitBlocksize, n - start);
    float new_absmax1 = 0.0f, new_absmax2 = 0.0f;
    for (int64_t j = 0; j < count; ++j) {
      const int64_t i = start + j;
      m[j] = map1[m_codes[i]] * absmax1[block];
      v[j] = map2[v_codes[i]] * absmax2[block];
      if (std::isfinite(g[i])) {
        adamw_bnb_states(s, g[i], m[j], v[j]);
        adamw_bnb_param(s, p[i], m[j], v[j]);
      } else {
        m[j] = 0.0f;
        v[j] = 0.0f;
      }
      new_absmax1 = std::max(new_absmax1, std::fabs(m[j]));
      new_absmax2 = std::max(new_absmax2, std::fabs(v[j]));
    }
    absmax1[block] = new_absmax1;
    absmax2[block] = new_absmax2;
    for (int64_t j = 0; j < count; ++j) {
      const int64_t i = start + j;
      uint32_t c1 = quantize_8bit_search(map1, optim_scaled(m[j], new_absmax1));
      if (std::signbit(map1[c1]) != std::signbit(m[j])) c1 = m[j] > 0.0f ? c1 + 1 : c1 - 1;
      m_codes[i] = static_cast<uint8_t>(c1);
      v_codes[i] = static_cast<uint8_t>(quantize_8bit_search(map2, optim_scaled(v[j], new_absmax2)));
    }
  }
}

}  // namespace nibble
