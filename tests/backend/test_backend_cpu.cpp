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

TEST(CpuBackend, MakeBackend) {
  EXPECT_EQ(make_backend(Device::cpu)->device(), Device::cpu);
#ifndef NIBBLE_WITH_CUDA
  EXPECT_THROW(make_cuda_backend(), Error);
#endif
}

}  // namespace
}  // namespace nibble::test
