// Optimizer state through a safetensors checkpoint: restored bit for bit, and a resumed run
// continues exactly as the uninterrupted one.
#include <cstdio>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "nibble/io/safetensors.h"
#include "nibble/optim/optimizer.h"
#include "optim_test_util.h"

namespace nibble {
namespace {

std::vector<OptimParam> make_params(uint32_t seed) {
  std::vector<OptimParam> params;
  const Shape shapes[] = {{300}, {64, 80}};  // 32-bit state, and 8-bit under paged_adamw_8bit
  for (int k = 0; k < 2; ++k)
    params.push_back({"layer." + std::to_string(k), test::random_tensor(shapes[k], seed + k),
                      Tensor::zeros(shapes[k], DType::f32)});
  return params;
}

void set_grads(std::vector<OptimParam>& params, int step) {
  for (size_t k = 0; k < params.size(); ++k) {
    Tensor g = test::random_tensor(params[k].grad.shape(), 1000 * step + k, 0.1f);
    std::memcpy(params[k].grad.data(), g.data(), g.nbytes());
  }
}

TEST(OptimState, SaveLoadRoundTripAndResumeBitExact) {
  for (AdamwVariant variant : {AdamwVariant::adamw, AdamwVariant::paged_adamw_32bit, AdamwVariant::paged_adamw_8bit}) {
    SCOPED_TRACE(std::string(adamw_variant_name(variant)));
    const AdamwHyper hyper{0.9, 0.999, 1e-8, 0.01};
    std::vector<OptimParam> a = make_params(1);
    AdamwOptimizer opt_a(variant, hyper, a);
    for (int t = 0; t < 3; ++t) {
      set_grads(a, t);
      opt_a.step(1e-3);
    }
    const std::string path = ::testing::TempDir() + "optim_state_" + std::string(adamw_variant_name(variant)) +
                             ".safetensors";
    save_safetensors(path, opt_a.state_tensors());

    // A fresh optimizer over copies of the parameters, restored from the file.
    std::vector<OptimParam> b = make_params(1);
    for (size_t k = 0; k < a.size(); ++k) std::memcpy(b[k].param.data(), a[k].param.data(), a[k].param.nbytes());
    AdamwOptimizer opt_b(variant, hyper, b);
    SafetensorsFile file = SafetensorsFile::open(path);
    std::vector<std::pair<std::string, Tensor>> loaded;
    for (const std::string& name : file.names()) loaded.emplace_back(name, file.tensor(name));
    opt_b.load_state_tensors(loaded);
    EXPECT_EQ(opt_b.steps_taken(), 3);
    auto sa = opt_a.state_tensors(), sb = opt_b.state_tensors();
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_EQ(sa[i].first, sb[i].first);
      EXPECT_EQ(std::memcmp(sa[i].second.data(), sb[i].second.data(), sa[i].second.nbytes()), 0) << sa[i].first;
    }
    for (int t = 3; t < 6; ++t) {
      set_grads(a, t);
      set_grads(b, t);
      opt_a.step(1e-3);
      opt_b.step(1e-3);
    }
    for (size_t k = 0; k < a.size(); ++k)
      EXPECT_EQ(std::memcmp(a[k].param.data(), b[k].param.data(), a[k].param.nbytes()), 0) << k;
    std::remove(path.c_str());
  }
}

TEST(OptimState, LoadRejectsMissingOrWrongTensors) {
  std::vector<OptimParam> a = make_params(1);
  AdamwOptimizer opt(AdamwVariant::adamw, AdamwHyper{}, a);
  auto state = opt.state_tensors();
  auto missing = state;
  missing.pop_back();
  EXPECT_THROW(opt.load_state_tensors(missing), Error);
  auto wrong = state;
  wrong[1].second = Tensor::zeros({299}, DType::f32);
  try {
    opt.load_state_tensors(wrong);
    FAIL() << "a wrong shape must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.layer.0.exp_avg"), std::string::npos) << e.what();
  }
  // The 8-bit optimizer names different tensors: a 32-bit checkpoint does not load into it.
  AdamwOptimizer opt8(AdamwVariant::paged_adamw_8bit, AdamwHyper{}, make_params(1));
  EXPECT_THROW(opt8.load_state_tensors(state), Error);
}

}  // namespace
}  // namespace nibble
