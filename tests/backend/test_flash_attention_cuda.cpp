// Packed attention at training lengths on the CUDA backend: the BF16 path (tensor-core tiles,
// flash_attention.cu) against the F32 path (the fp32 kernels of attention.cu) on the same
// BF16-valued inputs. The op-case tables check short sequences against the CPU; here sequences
// span many 64-token tiles, start and end inside tiles, and one has a single token.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend_backward_cases.h"
#include "backend_op_cases.h"
#include "case_values.h"

namespace nibble::test {
namespace {

struct Shape4 {
  std::vector<int64_t> lengths;
  int64_t H, KVH, D;
};

void check_bf16_matches_f32(const Shape4& shape, uint64_t seed) {
  int64_t T = 0;
  for (int64_t n : shape.lengths) T += n;
  const int64_t H = shape.H, KVH = shape.KVH, D = shape.D;
  SCOPED_TRACE(::testing::Message() << "T " << T << " H " << H << " KVH " << KVH << " D " << D << ", seed " << seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal01(0.0, 1.0);
  auto draw = [&](int64_t n) {
    std::vector<double> x(n);
    for (double& e : x) e = round_ref(DType::bf16, normal01(rng));  // exact in F32 too
    return x;
  };
  const std::vector<double> q = draw(T * H * D), k = draw(T * KVH * D), v = draw(T * KVH * D),
                            dout = draw(T * H * D);
  auto b = make_cuda_backend();
  const Tensor ids = packed_ids(shape.lengths, Device::cuda);
  auto device = [&](DType dt, const Shape& s, const std::vector<double>& x) { return host_tensor(dt, s, x).to(Device::cuda); };

  // Both dtypes: forward, then backward from the BF16 run's rounded out (the out each backward
  // is defined on), so the two differ only by the BF16 path's roundings and fp32 sums.
  std::vector<double> out16, lse16;
  Values result[2];
  for (int pass = 0; pass < 2; ++pass) {
    const DType dt = pass == 0 ? DType::bf16 : DType::f32;
    Tensor tq = device(dt, {T, H, D}, q), tk = device(dt, {T, KVH, D}, k), tv = device(dt, {T, KVH, D}, v),
           tdo = device(dt, {T, H, D}, dout);
    Tensor out = Tensor::empty({T, H, D}, dt, Device::cuda), lse = Tensor::empty({H, T}, DType::f32, Device::cuda);
    b->attention_packed_forward(out, &lse, tq, tk, tv, ids);
    b->synchronize();
    const std::vector<double> out_values = doubles(out), lse_values = doubles(lse);
    if (pass == 0) out16 = out_values, lse16 = lse_values;
    Tensor used_out = device(dt, {T, H, D}, out16);
    Tensor dq = Tensor::empty({T, H, D}, dt, Device::cuda), dk = Tensor::empty({T, KVH, D}, dt, Device::cuda),
           dv = Tensor::empty({T, KVH, D}, dt, Device::cuda);
    b->attention_packed_backward(dq, dk, dv, tdo, tq, tk, tv, used_out, lse, ids);
    b->synchronize();
    result[pass] = {out_values, lse_values, doubles(dq), doubles(dk), doubles(dv)};
  }
  // Each path within the packed op case's bound of the exact values (attention_packed_case:
  // 2 eps + 8 (T + D) eps_f32, eps of its dtype), so within the sum of both of each other.
  const double bound = 2 * eps_of(DType::bf16) + 2 * kEpsF32 + 16 * (T + D) * kEpsF32;
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  for (int o = 0; o < 5; ++o)
    EXPECT_LE(relative_error(result[0][o], result[1][o]), bound) << names[o];
}

TEST(CudaFlashAttention, Bf16MatchesF32AtTrainingLengths) {
  const uint64_t seed = std::random_device{}();
  check_bf16_matches_f32({{300, 1, 650, 73}, 4, 2, 128}, seed);  // GQA, runs across tiles
  check_bf16_matches_f32({{1100}, 2, 1, 64}, seed + 1);          // one long sequence, MQA
  check_bf16_matches_f32({{129, 70}, 3, 3, 40}, seed + 2);       // odd D (padded to 64), MHA
}

}  // namespace
}  // namespace nibble::test
