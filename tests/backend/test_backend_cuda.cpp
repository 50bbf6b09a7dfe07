// Every op case on the CUDA backend against the CPU backend, on the same fresh inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "backend_op_cases.h"
#include "case_values.h"

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

// The fused kernel is meant to give the two ops' numbers exactly (backend.h), not only within the
// op case's bound: compared byte for byte, on rows wide enough for the vector path and not.
TEST(CudaBackend, AddRmsnormIsAddThenRmsnormBitForBit) {
  std::unique_ptr<Backend> cuda = make_cuda_backend();
  std::mt19937_64 rng(std::random_device{}());
  for (int64_t C : {4096, 70}) {
    const int64_t T = 3;
    OpCase shapes;
    shapes.inputs = {normal({T, C}, DType::bf16, 2.0), normal({T, C}, DType::bf16), normal({C}, DType::bf16, 0.2, 1.0)};
    Tensors in = make_inputs(shapes, rng);
    Tensor x1 = in[0].to(Device::cuda), x2 = in[0].to(Device::cuda);
    Tensor delta = in[1].to(Device::cuda), weight = in[2].to(Device::cuda);
    Tensor fused = Tensor::empty({T, C}, DType::bf16, Device::cuda), plain = Tensor::empty({T, C}, DType::bf16, Device::cuda);
    cuda->add_rmsnorm_forward(x1, fused, delta, weight, 1e-5f);
    cuda->add_forward(x2, x2, delta);
    cuda->rmsnorm_forward(plain, x2, weight, 1e-5f);
    Tensor a = fused.to(Device::cpu), b = plain.to(Device::cpu), xa = x1.to(Device::cpu), xb = x2.to(Device::cpu);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0) << "C = " << C;
    EXPECT_EQ(std::memcmp(xa.data(), xb.data(), xa.nbytes()), 0) << "C = " << C;
  }
}

TEST(CudaBackend, RejectsBadArguments) {
  std::unique_ptr<Backend> backend = make_cuda_backend();
  check_rejects_bad_arguments(*backend);
}

}  // namespace
}  // namespace nibble::test
