// Every op case on the CPU backend against its double-precision reference.
#include <gtest/gtest.h>

#include "backend_op_cases.h"

namespace nibble::test {
namespace {

class CpuOps : public ::testing::TestWithParam<size_t> {};

TEST_P(CpuOps, MatchesDoubleReference) {
  const OpCase& op_case = backend_op_cases()[GetParam()];
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

INSTANTIATE_TEST_SUITE_P(Cases, CpuOps, ::testing::Range<size_t>(0, backend_op_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return backend_op_cases()[info.param].name;
                         });

TEST(CpuBackend, RejectsBadArguments) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  check_rejects_bad_arguments(*backend);
}

// The op cases check the mask against Philox; this checks Philox gives the rate asked for:
// with n = 200,000 draws the dropped share has standard deviation sqrt(p(1-p)/n) < 0.0011, and
// the bound is five of those.
TEST(CpuBackend, DropoutDropsTheAskedShare) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  for (float p : {0.05f, 0.1f, 0.5f}) {
    Tensor in = Tensor::empty({200000}, DType::f32);
    for (int64_t i = 0; i < in.numel(); ++i) in.data_as<float>()[i] = 1.0f;
    Tensor out = Tensor::empty({200000}, DType::f32);
    backend->dropout(out, in, p, 7, 3);
    int64_t dropped = 0;
    for (int64_t i = 0; i < out.numel(); ++i) dropped += out.data_as<float>()[i] == 0.0f;
    EXPECT_NEAR(static_cast<double>(dropped) / out.numel(), p, 0.0055) << "p = " << p;
  }
}

TEST(CpuBackend, MakeBackend) {
  EXPECT_EQ(make_backend(Device::cpu)->device(), Device::cpu);
#ifndef NIBBLE_WITH_CUDA
  EXPECT_THROW(make_cuda_backend(), Error);
#endif
}

}  // namespace
}  // namespace nibble::test
