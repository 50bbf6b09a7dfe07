// The CPU reference against real bitsandbytes output (tests/golden/bnb/, made by
// tests/golden/make_bnb_golden.py on a GPU with bnb's CUDA kernels). Dequantize must match bnb's
// bytes exactly. Quantize must match exactly where every block absmax is a power of two; elsewhere
// the CPU's IEEE reciprocal may move a code to its neighbour next to a threshold (counted, bounded).
#include <cstdio>
#include <cstring>

#include <gtest/gtest.h>

#include "golden_cases.h"
#include "nibble/quant/quantize.h"
#include "nibble/quant/quantize_cpu.h"
#include "quant_test_util.h"

using namespace nibble;
using namespace nibble::quant_test;

namespace {

std::vector<float> as_floats(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::f32) out[i] = t.data_as<float>()[i];
    if (t.dtype() == DType::bf16) out[i] = bf16_to_float(t.data_as<bf16_t>()[i]);
    if (t.dtype() == DType::f16) out[i] = fp16_to_float(t.data_as<fp16_t>()[i]);
  }
  return out;
}

}  // namespace

TEST(QuantGolden, CpuDequantizeEqualsBnbBytes) {
  std::vector<std::string> files = golden_files();
  if (files.empty()) GTEST_SKIP() << "no golden data in " << golden_dir() << " (run tests/golden/make_bnb_golden.py)";
  for (const std::string& path : files) {
    GoldenCase c = load_golden(path);
    Tensor out = dequantize_4bit(c.bnb, c.dequant.dtype());
    ASSERT_EQ(out.nbytes(), c.dequant.nbytes()) << c.name;
    EXPECT_EQ(0, std::memcmp(out.data(), c.dequant.data(), out.nbytes())) << c.name;
  }
}

TEST(QuantGolden, CpuQuantizeEqualsBnbUpToReciprocal) {
  std::vector<std::string> files = golden_files();
  if (files.empty()) GTEST_SKIP() << "no golden data in " << golden_dir() << " (run tests/golden/make_bnb_golden.py)";
  for (const std::string& path : files) {
    GoldenCase c = load_golden(path);
    const QuantizedWeight& bnb = c.bnb;
    QuantizedWeight ours = quantize_4bit(c.input, QuantConfig{bnb.type, bnb.blocksize, bnb.double_quant});
    const int64_t n = bnb.numel();
    std::vector<float> x = as_floats(c.input);
    std::vector<float> absmax(ours.blocks());
    blockwise_absmax_cpu(x.data(), n, bnb.blocksize, absmax.data());
    if (!bnb.double_quant) {
      ASSERT_EQ(0, std::memcmp(ours.absmax.data(), bnb.absmax.data(), bnb.absmax.nbytes())) << c.name;
    }
    std::vector<uint8_t> a(ours.packed.data_as<uint8_t>(), ours.packed.data_as<uint8_t>() + ours.packed.numel());
    std::vector<uint8_t> b(bnb.packed.data_as<uint8_t>(), bnb.packed.data_as<uint8_t>() + bnb.packed.numel());
    int64_t differences = 0;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t ca = nibble_at(a, i), cb = nibble_at(b, i);
      if (ca == cb) continue;
      ++differences;
      ASSERT_FALSE(c.power_of_two_absmax) << c.name << ": element " << i << " differs with a power-of-two absmax";
      ASSERT_TRUE(is_near_threshold_neighbour(bnb.type, x[i], absmax[i / bnb.blocksize], ca, cb))
          << c.name << ": element " << i << " ours " << ca << " bnb " << cb;
    }
    EXPECT_EQ(a.back(), b.back()) << c.name << ": last byte (padding nibble)";
    EXPECT_LT(differences, n / 1000 + 1) << c.name;  // bnb-format.md 1.3: <= 324 per million seen
    if (differences > 0) std::printf("  %s: %lld of %lld codes differ (neighbours at a threshold)\n", c.name.c_str(),
                                     static_cast<long long>(differences), static_cast<long long>(n));
    if (bnb.double_quant) {
      // Offset: torch's float32 mean vs our double sum rounded once; equal where it was checked.
      EXPECT_EQ(ours.offset, bnb.offset) << c.name;
      ASSERT_EQ(0, std::memcmp(ours.nested_absmax.data(), bnb.nested_absmax.data(), bnb.nested_absmax.nbytes()))
          << c.name;
      ASSERT_EQ(0, std::memcmp(ours.nested_code.data(), bnb.nested_code.data(), bnb.nested_code.nbytes())) << c.name;
      const uint8_t* qa = ours.absmax.data_as<uint8_t>();
      const uint8_t* qb = bnb.absmax.data_as<uint8_t>();
      const float* map = bnb.nested_code.data_as<float>();
      for (int64_t i = 0; i < bnb.blocks(); ++i) {
        if (qa[i] == qb[i]) continue;
        int lo = std::min(qa[i], qb[i]), hi = std::max(qa[i], qb[i]);
        ASSERT_EQ(hi, lo + 1) << c.name << ": nested code " << i;
        float s = (absmax[i] - bnb.offset) * (1.0f / bnb.nested_absmax.data_as<float>()[i / 256]);
        ASSERT_LE(ulp_distance(s, (map[lo] + map[hi]) * 0.5f), 2) << c.name << ": nested code " << i;
      }
    }
  }
}

TEST(QuantGolden, MetadataHasVersionHeader) {
  std::vector<std::string> files = golden_files();
  if (files.empty()) GTEST_SKIP() << "no golden data in " << golden_dir() << " (run tests/golden/make_bnb_golden.py)";
  GoldenCase c = load_golden(files.front());
  for (const char* key : {"script", "bitsandbytes", "torch", "date"}) EXPECT_TRUE(c.metadata.count(key)) << key;
}
