// The training ops on the CUDA backend against the CPU backend, on the same fresh inputs.
#include <gtest/gtest.h>

#include "backend_backward_cases.h"

namespace nibble::test {
namespace {

class CudaBackward : public ::testing::TestWithParam<size_t> {};

TEST_P(CudaBackward, MatchesCpuBackend) {
  const OpCase& op_case = backend_backward_cases()[GetParam()];
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

INSTANTIATE_TEST_SUITE_P(Cases, CudaBackward, ::testing::Range<size_t>(0, backend_backward_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return backend_backward_cases()[info.param].name;
                         });

TEST(CudaBackward, PackedAttentionEqualsSeparateSequences) {
  auto b = make_cuda_backend();
  // Per sequence the kernels visit the same keys in the same steps only when a sequence starts
  // at a step boundary, so allow the fp32 reassociation: 64 * (T + D) * eps_f32 plus an ulp of
  // the dtype where a final rounding flips.
  const double f32_sums = 64 * 64 * std::ldexp(1.0, -23);
  check_packed_equals_separate(*b, DType::f32, f32_sums);
  check_packed_equals_separate(*b, DType::bf16, std::ldexp(1.0, -7) + f32_sums);
}

TEST(CudaBackward, RejectsBadArguments) {
  auto b = make_cuda_backend();
  check_backward_rejects_bad_arguments(*b);
}

}  // namespace
}  // namespace nibble::test
