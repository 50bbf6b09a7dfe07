// Size arithmetic of quant/sizes.h (QLoRA paper's DQ count, bnb-format.md 2.5).
#include <gtest/gtest.h>

#include "nibble/core/tensor.h"
#include "nibble/quant/quantize.h"
#include "nibble/quant/sizes.h"

using namespace nibble;

TEST(QuantSizes, BitsPerParameter) {
  EXPECT_DOUBLE_EQ(quant_constant_bits_per_param(64, false), 0.5);
  EXPECT_DOUBLE_EQ(quant_constant_bits_per_param(64, true), 0.126953125);  // 8/64 + 32/(64*256)
  EXPECT_NEAR(quant_constant_bits_per_param(64, false) - quant_constant_bits_per_param(64, true), 0.373, 5e-4);
}

TEST(QuantSizes, ByteCounts) {
  const int64_t n = 4096LL * 11008;  // a Llama-2-7B MLP weight
  EXPECT_EQ(quant_blocks(n, 64), 704512);
  EXPECT_EQ(quant_packed_bytes(n), n / 2);
  EXPECT_EQ(quant_constant_bytes(n, 64, false), 704512 * 4 + 64);
  EXPECT_EQ(quant_constant_bytes(n, 64, true), 704512 + 2752 * 4 + 64 + 4 + 1024);
  EXPECT_EQ(quant_total_bytes(5, 64, false), 3 + 4 + 64);
  EXPECT_EQ(quant_blocks(257, 256), 2);
}

TEST(QuantSizes, AllocationsUseTheSizeFunctions) {
  Tensor weight = Tensor::zeros({70, 33}, DType::bf16);
  for (bool dq : {false, true}) {
    QuantizedWeight w = quantize_4bit(weight, QuantConfig{QuantType::nf4, 64, dq});
    int64_t constants = static_cast<int64_t>(w.absmax.nbytes() + w.code.nbytes());
    if (dq) constants += static_cast<int64_t>(w.nested_absmax.nbytes() + w.nested_code.nbytes() + sizeof(float));
    EXPECT_EQ(static_cast<int64_t>(w.packed.nbytes()), quant_packed_bytes(70 * 33));
    EXPECT_EQ(constants, quant_constant_bytes(70 * 33, 64, dq));
  }
}
