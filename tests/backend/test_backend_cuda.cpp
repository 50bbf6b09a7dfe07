// Every op case on the CUDA backend against the CPU backend, on the same fresh inputs.
#include <gtest/gtest.h>

#include "backend_op_cases.h"

namespace nibble::test {
namespace {

class CudaOps : public ::testing::TestWithParam<size_t> {};

TEST_P(CudaOps, MatchesCpuBackend) {
  const OpCase& op_case = backend_op_cases()[GetParam()];
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << op_case.name << ", seed " << seed);
  std::mt19937_64 rng(seed);
  Tensors inputs = make_inputs(op_case, rng);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::unique_ptr<Backend> cuda = make_cuda_backend();
  Values expected = run_on_backend(op_case, *cpu, inputs);
  Values out = run_on_backend(op_case, *cuda, inputs);
  ASSERT_EQ(out.size(), expected.size());
  // Both backends are within `bound` of the exact reference, so within twice it of each other.
  for (size_t o = 0; o < out.size(); ++o)
    EXPECT_LE(relative_error(out[o], expected[o]), 2 * op_case.bound)
        << "output " << o << "; bound: twice (" << op_case.bound_origin << ")";
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaOps, ::testing::Range<size_t>(0, backend_op_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return backend_op_cases()[info.param].name;
                         });

TEST(CudaBackend, RejectsBadArguments) {
  std::unique_ptr<Backend> backend = make_cuda_backend();
  check_rejects_bad_arguments(*backend);
}

}  // namespace
}  // namespace nibble::test
