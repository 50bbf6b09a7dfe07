// CUDA quantize/dequantize against the CPU reference on fresh random inputs (label gpu).
// Where block absmax are powers of two both reciprocals are exact, so bytes must be identical.
// On general inputs the GPU's rcp.approx may move a code to its neighbour when the scaled value
// sits within ~1 ulp of a threshold; every difference must be exactly that (bnb-format.md 1.3).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/cuda_check.h"
#include "nibble/core/device.h"
#include "nibble/core/tensor.h"
#include "nibble/quant/quant_cuda.h"
#include "nibble/quant/quantize.h"
#include "nibble/quant/quantize_cpu.h"
#include "nibble/quant/sizes.h"
#include "nibble/quant/torch_mean.h"
#include "quant_test_util.h"

using namespace nibble;
using namespace nibble::quant_test;

namespace {

// x as a host tensor of `dtype` (values rounded to the dtype first, as the device sees them).
Tensor host_tensor(const std::vector<float>& x, DType dtype) {
  const int64_t n = static_cast<int64_t>(x.size());
  Tensor t = Tensor::empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == DType::f32) t.data_as<float>()[i] = x[i];
    if (dtype == DType::bf16) t.data_as<bf16_t>()[i] = float_to_bf16(x[i]);
    if (dtype == DType::f16) t.data_as<fp16_t>()[i] = float_to_fp16(x[i]);
  }
  return t;
}

std::vector<float> as_floats(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::f32) out[i] = t.data_as<float>()[i];
    if (t.dtype() == DType::bf16) out[i] = bf16_to_float(t.data_as<bf16_t>()[i]);
    if (t.dtype() == DType::f16) out[i] = fp16_to_float(t.data_as<fp16_t>()[i]);
  }
  return out;
}

template <typename T>
std::vector<T> to_host(const Tensor& t) {
  Tensor h = t.to(Device::cpu);
  return std::vector<T>(h.data_as<T>(), h.data_as<T>() + h.numel());
}


// The sizes the device torch.mean is checked at: every size of the strided (< 128) and small
// vectorized launches, powers of two and their neighbours, the single-/multi-CTA edge, the Llama
// absmax counts (7B/8B at blocksize 64), the edge where the CTA count stops growing with n and
// the multiprocessor count starts to decide it, and random sizes.
std::vector<int64_t> torch_mean_sizes(const TorchMeanDevice& facts, int64_t most, std::mt19937_64& rng) {
  std::vector<int64_t> sizes;
  for (int64_t n = 1; n <= 300; ++n) sizes.push_back(n);
  for (int k = 9; k <= 22; ++k)
    for (int64_t d = -2; d <= 2; ++d) sizes.push_back((int64_t{1} << k) + d);
  for (int64_t n : {130559, 130560, 130561, 130562, 130563, 262144, 704512, 917504, 3670016}) sizes.push_back(n);
  // ctas = min(target grid, ceil(ceil(n / 512) / 16)): the clamp binds from 512 * 16 * target on.
  const int64_t grid = static_cast<int64_t>(facts.multiprocessor_count) * (facts.max_threads_per_multiprocessor / 512);
  for (int64_t d : {-8193, -1, 0, 1, 8191, 8192, 8193}) sizes.push_back(512 * 16 * grid + d);
  std::uniform_int_distribution<int64_t> any(1, most);
  for (int i = 0; i < 60; ++i) sizes.push_back(any(rng));
  sizes.erase(std::remove_if(sizes.begin(), sizes.end(), [&](int64_t n) { return n < 1 || n > most; }),
              sizes.end());
  return sizes;
}

const DType kInputTypes[] = {DType::f32, DType::f16, DType::bf16};
const int64_t kBlocksizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};

}  // namespace

TEST(QuantCuda, PowerOfTwoBlocksAreByteIdentical) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937 rng(2024);
  for (QuantType type : {QuantType::nf4, QuantType::fp4})
    for (DType dtype : kInputTypes)
      for (int64_t blocksize : kBlocksizes) {
        const int64_t n = 7 * blocksize + 2 * (rng() % 64) + 1;  // odd, partial last block
        Tensor host = host_tensor(power_of_two_blocks(n, blocksize, rng), dtype);
        QuantConfig config{type, blocksize, false};
        QuantizedWeight cpu = quantize_4bit(host, config);
        QuantizedWeight gpu = quantize_4bit(host.to(Device::cuda), config);
        SCOPED_TRACE(::testing::Message() << quant_type_name(type) << " " << dtype_safetensors_name(dtype) << " B="
                                          << blocksize << " n=" << n);
        ASSERT_EQ(to_host<uint8_t>(gpu.packed), to_host<uint8_t>(cpu.packed));
        ASSERT_EQ(to_host<float>(gpu.absmax), to_host<float>(cpu.absmax));
      }
}

TEST(QuantCuda, GeneralInputsDifferOnlyNextToThresholds) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (QuantType type : {QuantType::nf4, QuantType::fp4})
    for (DType dtype : kInputTypes)
      for (int64_t blocksize : {32, 64, 256, 4096}) {
        const int64_t n = 1 << 20;
        std::vector<float> values(n);
        for (auto& v : values) v = normal(rng);
        Tensor host = host_tensor(values, dtype);
        std::vector<float> x = as_floats(host);
        QuantConfig config{type, blocksize, false};
        QuantizedWeight cpu = quantize_4bit(host, config);
        QuantizedWeight gpu = quantize_4bit(host.to(Device::cuda), config);
        std::vector<uint8_t> a = to_host<uint8_t>(cpu.packed), b = to_host<uint8_t>(gpu.packed);
        std::vector<float> absmax = to_host<float>(cpu.absmax);
        ASSERT_EQ(to_host<float>(gpu.absmax), absmax);
        int64_t differences = 0;
        for (int64_t i = 0; i < n; ++i) {
          uint32_t ca = nibble_at(a, i), cb = nibble_at(b, i);
          if (ca == cb) continue;
          ++differences;
          ASSERT_TRUE(is_near_threshold_neighbour(type, x[i], absmax[i / blocksize], ca, cb))
              << "element " << i << " x=" << x[i] << " absmax=" << absmax[i / blocksize] << " cpu code " << ca
              << " gpu code " << cb;
        }
        std::printf("  %s %s B=%lld: %lld of %lld codes differ (all neighbours at a threshold)\n",
                    std::string(quant_type_name(type)).c_str(), std::string(dtype_safetensors_name(dtype)).c_str(),
                    static_cast<long long>(blocksize), static_cast<long long>(differences), static_cast<long long>(n));
        // bnb-format.md 1.3 saw at most 324 per million between the two reciprocals.
        EXPECT_LT(differences, n / 1000);
      }
}

TEST(QuantCuda, DoubleQuantMatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const int64_t n = 64 * 256 * 37 + 64 * 5 + 3;
  std::vector<float> values(n);
  for (auto& v : values) v = normal(rng);
  Tensor host = host_tensor(values, DType::bf16);
  QuantConfig config{QuantType::nf4, 64, true};
  QuantizedWeight cpu = quantize_4bit(host, config);
  QuantizedWeight gpu = quantize_4bit(host.to(Device::cuda), config);
  EXPECT_EQ(gpu.offset, cpu.offset);  // both: double sum, one rounding
  std::vector<float> nested = to_host<float>(cpu.nested_absmax);
  ASSERT_EQ(to_host<float>(gpu.nested_absmax), nested);
  EXPECT_EQ(to_host<float>(gpu.nested_code), to_host<float>(cpu.nested_code));
  // Nested 8-bit codes: neighbours whose scaled value sits within 2 ulp of their float32 midpoint.
  std::vector<float> absmax(cpu.blocks());
  blockwise_absmax_cpu(as_floats(host).data(), n, 64, absmax.data());
  float map[kDynamicMapSize];
  signed_dynamic_map(map);
  std::vector<uint8_t> qa = to_host<uint8_t>(cpu.absmax), qb = to_host<uint8_t>(gpu.absmax);
  int64_t differences = 0;
  for (int64_t i = 0; i < cpu.blocks(); ++i) {
    if (qa[i] == qb[i]) continue;
    ++differences;
    int lo = std::min(qa[i], qb[i]), hi = std::max(qa[i], qb[i]);
    ASSERT_EQ(hi, lo + 1) << "block " << i;
    float s = (absmax[i] - cpu.offset) * (1.0f / nested[i / 256]);
    ASSERT_LE(ulp_distance(s, (map[lo] + map[hi]) * 0.5f), 2) << "block " << i;
  }
  std::printf("  nested codes: %lld of %lld differ\n", static_cast<long long>(differences),
              static_cast<long long>(cpu.blocks()));
}

TEST(QuantCuda, DequantizeIsBitIdenticalToCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (bool dq : {false, true})
    for (QuantType type : {QuantType::nf4, QuantType::fp4})
      for (int64_t blocksize : {32, 64, 4096})
        for (int64_t n : {int64_t{1} << 16, int64_t{4096 * 3 + 1023}, int64_t{1000001}}) {
          std::vector<float> values(n);
          for (auto& v : values) v = normal(rng);
          QuantizedWeight cpu = quantize_4bit(host_tensor(values, DType::f32), QuantConfig{type, blocksize, dq});
          // The GPU dequantizes the very same state (copied), so results must agree bit for bit.
          QuantizedWeight gpu = cpu;
          gpu.packed = cpu.packed.to(Device::cuda);
          gpu.absmax = cpu.absmax.to(Device::cuda);
          gpu.code = cpu.code.to(Device::cuda);
          if (dq) {
            gpu.nested_absmax = cpu.nested_absmax.to(Device::cuda);
            gpu.nested_code = cpu.nested_code.to(Device::cuda);
          }
          SCOPED_TRACE(::testing::Message() << "dq=" << dq << " " << quant_type_name(type) << " B=" << blocksize
                                            << " n=" << n);
          ASSERT_EQ(to_host<float>(dequantize_absmax(gpu)), to_host<float>(dequantize_absmax(cpu)));
          for (DType out : kInputTypes) {
            Tensor expected = dequantize_4bit(cpu, out);
            Tensor actual = dequantize_4bit(gpu, out).to(Device::cpu);
            ASSERT_EQ(0, std::memcmp(expected.data(), actual.data(), expected.nbytes())) << dtype_safetensors_name(out);
          }
        }
}

TEST(QuantCuda, DequantizeIntoWorkspaceWritesEveryElement) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937 rng(23);
  std::vector<float> values(4096 * 5 + 77);
  for (auto& v : values) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  QuantizedWeight cpu = quantize_4bit(host_tensor(values, DType::bf16), QuantConfig{});
  QuantizedWeight gpu = quantize_4bit(host_tensor(values, DType::bf16).to(Device::cuda), QuantConfig{});
  // Poison the workspace with NaN so an unwritten element shows.
  Tensor poison = Tensor::empty({static_cast<int64_t>(values.size())}, DType::bf16);
  for (int64_t i = 0; i < poison.numel(); ++i) poison.data_as<bf16_t>()[i] = bf16_t{0x7fc0};
  Tensor workspace = poison.to(Device::cuda);
  dequantize_4bit_into(gpu, workspace);
  cuda_synchronize();
  Tensor expected = dequantize_4bit(cpu, DType::bf16);
  Tensor actual = workspace.to(Device::cpu);
  EXPECT_EQ(0, std::memcmp(expected.data(), actual.data(), expected.nbytes()));
}

// The device torch.mean (torch_mean_f32_cuda) against the host emulation it replays, bit for bit,
// with the same device facts: the emulation matches real torch exactly (check_torch_mean), so
// the kernel must give the same float32, not one within a tolerance. Inputs are absmax-like
// (positive, ~0.05) and mixed-sign; every size is also run from a pointer 1, 2 and 3 floats past
// a 16-byte boundary (the head path) and with the pre-2.10 shuffle order.
TEST(QuantCuda, TorchMeanMatchesHostEmulation) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  const TorchMeanDevice facts = torch_mean_cuda_device();
  const int64_t most = 4500000;
  std::mt19937_64 rng(2011);
  const std::vector<int64_t> sizes = torch_mean_sizes(facts, most, rng);
  int64_t partials = torch_mean_f32_cuda_partials(most, facts);
  for (int64_t n : sizes) partials = std::max(partials, torch_mean_f32_cuda_partials(n, facts));
  Tensor workspace = Tensor::empty({1 + partials}, DType::f32, Device::cuda);
  float* mean = workspace.data_as<float>();

  std::uniform_real_distribution<float> absmax_like(0.03f, 0.07f);
  std::uniform_real_distribution<float> signed_values(-1.0f, 1.0f);
  for (bool mixed_sign : {false, true}) {
    std::vector<float> values(static_cast<size_t>(most + 3));
    for (auto& v : values) v = mixed_sign ? signed_values(rng) : absmax_like(rng);
    Tensor host = Tensor::empty({most + 3}, DType::f32);
    std::memcpy(host.data(), values.data(), values.size() * sizeof(float));
    Tensor device = host.to(Device::cuda);
    const float* base = device.data_as<float>();
    std::vector<std::string> mismatches;
    int64_t checked = 0;
    auto check = [&](int64_t n, int shift, bool decreasing) {
      TorchMeanDevice emulated = facts;
      emulated.warp_offsets_decreasing = decreasing;
      emulated.misalignment = static_cast<int>(reinterpret_cast<uintptr_t>(base + shift) % 16 / 4);
      const float expected = torch_cuda_mean_f32(values.data() + shift, n, emulated);
      torch_mean_f32_cuda(base + shift, n, emulated, mean + 1, mean, nullptr);
      float actual;
      NIBBLE_CUDA_CHECK(cudaMemcpy(&actual, mean, sizeof actual, cudaMemcpyDeviceToHost));
      ++checked;
      if (float_bits(actual) != float_bits(expected) && mismatches.size() < 10) {
        mismatches.push_back(::testing::PrintToString(n) + " from +" + std::to_string(shift) +
                             (decreasing ? "" : " (doubling offsets)") + ": device " +
                             ::testing::PrintToString(actual) + " emulation " + ::testing::PrintToString(expected));
      }
    };
    for (int64_t n : sizes) {
      for (int shift = 0; shift < 4; ++shift) check(n, shift, true);
      check(n, 0, false);
    }
    SCOPED_TRACE(mixed_sign ? "mixed-sign inputs" : "positive inputs around 0.05");
    for (const std::string& m : mismatches) ADD_FAILURE() << "n = " << m;
    EXPECT_TRUE(mismatches.empty()) << checked << " sizes checked";
  }
  // torch's empty mean is NaN.
  torch_mean_f32_cuda(nullptr, 0, facts, nullptr, mean, nullptr);
  float empty;
  NIBBLE_CUDA_CHECK(cudaMemcpy(&empty, mean, sizeof empty, cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::isnan(empty));
}

// quantize_4bit on the device leaves the offset to torch_mean_f32_cuda; with more than 130560
// blocks (several CTAs, as every large Llama projection has) it must still be the emulation's
// mean of the same absmax.
TEST(QuantCuda, DoubleQuantOffsetIsTorchMeanOfAbsmax) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const int64_t blocks = 200003;
  const int64_t n = 64 * blocks - 17;
  std::vector<float> values(static_cast<size_t>(n));
  for (auto& v : values) v = normal(rng);
  Tensor host = host_tensor(values, DType::bf16);
  QuantizedWeight gpu = quantize_4bit(host.to(Device::cuda), QuantConfig{QuantType::nf4, 64, true});
  std::vector<float> absmax(static_cast<size_t>(blocks));
  blockwise_absmax_cpu(as_floats(host).data(), n, 64, absmax.data());
  const float expected = torch_cuda_mean_f32(absmax.data(), blocks, torch_mean_cuda_device());
  EXPECT_EQ(float_bits(gpu.offset), float_bits(expected)) << gpu.offset << " vs " << expected;
}
