// CUDA quantize and dequantize against real bitsandbytes CUDA output: both use rcp.approx and the
// same rounding, so every byte must be equal (label gpu).
#include <cstring>

#include <gtest/gtest.h>

#include "golden_cases.h"
#include "nibble/core/device.h"
#include "nibble/quant/quantize.h"

using namespace nibble;
using namespace nibble::quant_test;

namespace {

void expect_same_bytes(const Tensor& device, const Tensor& host, const std::string& what) {
  Tensor copy = device.to(Device::cpu);
  ASSERT_EQ(copy.nbytes(), host.nbytes()) << what;
  EXPECT_EQ(0, std::memcmp(copy.data(), host.data(), host.nbytes())) << what;
}

}  // namespace

TEST(QuantGoldenCuda, QuantizeAndDequantizeEqualBnbBytes) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  std::vector<std::string> files = golden_files();
  if (files.empty()) GTEST_SKIP() << "no golden data in " << golden_dir() << " (run tests/golden/make_bnb_golden.py)";
  for (const std::string& path : files) {
    GoldenCase c = load_golden(path);
    const QuantizedWeight& bnb = c.bnb;
    QuantizedWeight ours = quantize_4bit(c.input.to(Device::cuda), QuantConfig{bnb.type, bnb.blocksize, bnb.double_quant});
    expect_same_bytes(ours.packed, bnb.packed, c.name + " packed");
    expect_same_bytes(ours.absmax, bnb.absmax, c.name + " absmax");
    if (bnb.double_quant) {
      EXPECT_EQ(ours.offset, bnb.offset) << c.name;
      expect_same_bytes(ours.nested_absmax, bnb.nested_absmax, c.name + " nested_absmax");
    }
    // bnb's own state, dequantized on the device.
    QuantizedWeight on_device = bnb;
    on_device.packed = bnb.packed.to(Device::cuda);
    on_device.absmax = bnb.absmax.to(Device::cuda);
    if (bnb.double_quant) {
      on_device.nested_absmax = bnb.nested_absmax.to(Device::cuda);
      on_device.nested_code = bnb.nested_code.to(Device::cuda);
    }
    expect_same_bytes(dequantize_4bit(on_device, c.dequant.dtype()), c.dequant, c.name + " dequant");
  }
}
