// AdamW with torch's rule against torch.optim.AdamW itself (tests/golden/make_optim_golden.py).
#include <cmath>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "nibble/io/safetensors.h"
#include "nibble/optim/optimizer.h"
#include "optim_test_util.h"

namespace nibble {
namespace {

using test::kEps32;

TEST(AdamwTorch, MatchesTorchOverTenSteps) {
  SafetensorsFile file = SafetensorsFile::open(std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/optim/adamw_torch.safetensors");
  for (const std::string c : {"default", "decay"}) {
    SCOPED_TRACE(c);
    Tensor hyper_t = file.tensor(c + ".hyper");
    const double* h = hyper_t.data_as<double>();
    AdamwHyper hyper{h[0], h[1], h[2], h[3]};
    Tensor lr_t = file.tensor(c + ".lr");
    const int64_t steps = lr_t.numel();
    std::vector<OptimParam> params;
    for (int k = 0; k < 3; ++k) {
      Tensor p0 = file.tensor(c + "." + std::to_string(k) + ".p0");
      params.push_back({std::to_string(k), p0.to(Device::cpu), Tensor::zeros(p0.shape(), DType::f32)});
    }
    AdamwOptimizer opt(AdamwVariant::adamw, hyper, params);
    // Bound: a step is ~10 float32 roundings; ATen may order or fuse them differently (lerp,
    // addcmul and addcdiv kernels may use FMA), which moves each result by <= 1 ulp of an
    // intermediate. So per step p may differ by 4 eps |p| (decay, add) + 8 eps |update|, and the
    // states by 4 eps of their magnitude; differences carried from earlier steps add up, so the
    // bounds accumulate over steps.
    std::vector<std::vector<double>> p_bound(3), m_bound(3), v_bound(3);
    for (int64_t step = 0; step < steps; ++step) {
      for (int k = 0; k < 3; ++k) {
        Tensor g = file.tensor(c + "." + std::to_string(k) + ".grad");
        const int64_t n = params[k].param.numel();
        std::memcpy(params[k].grad.data(), g.data_as<float>() + step * n, n * 4);
      }
      opt.step(lr_t.data_as<double>()[step]);
      auto state = opt.state_tensors();
      for (int k = 0; k < 3; ++k) {
        const std::string base = c + "." + std::to_string(k);
        const int64_t n = params[k].param.numel();
        const float* want_p = file.tensor(base + ".p").data_as<float>() + step * n;
        const float* want_m = file.tensor(base + ".exp_avg").data_as<float>() + step * n;
        const float* want_v = file.tensor(base + ".exp_avg_sq").data_as<float>() + step * n;
        const float* prev_p = step == 0 ? file.tensor(base + ".p0").data_as<float>()
                                        : file.tensor(base + ".p").data_as<float>() + (step - 1) * n;
        const float* got_p = params[k].param.data_as<float>();
        const float* got_m = state[1 + 2 * k].second.data_as<float>();
        const float* got_v = state[2 + 2 * k].second.data_as<float>();
        p_bound[k].resize(n, 0.0);
        m_bound[k].resize(n, 0.0);
        v_bound[k].resize(n, 0.0);
        double moved = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const double update = std::fabs(static_cast<double>(want_p[i]) - prev_p[i]);
          moved += update;
          p_bound[k][i] += 4 * kEps32 * std::fabs(want_p[i]) + 8 * kEps32 * update;
          m_bound[k][i] += 4 * kEps32 * std::fabs(want_m[i]);
          v_bound[k][i] += 4 * kEps32 * std::fabs(want_v[i]);
          ASSERT_LE(std::fabs(got_p[i] - static_cast<double>(want_p[i])), p_bound[k][i]) << base << " p[" << i << "] step " << step;
          ASSERT_LE(std::fabs(got_m[i] - static_cast<double>(want_m[i])), m_bound[k][i]) << base << " m[" << i << "] step " << step;
          ASSERT_LE(std::fabs(got_v[i] - static_cast<double>(want_v[i])), v_bound[k][i]) << base << " v[" << i << "] step " << step;
        }
        ASSERT_GT(moved, 0.0) << "the reference must move the parameters";
      }
    }
  }
}

}  // namespace
}  // namespace nibble
