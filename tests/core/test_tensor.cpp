#include <gtest/gtest.h>

#include "nibble/core/tensor.h"

using namespace nibble;

TEST(Tensor, ShapeAndBytes) {
  Tensor t = Tensor::zeros({3, 5}, DType::bf16);
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 30u);
  EXPECT_EQ(t.describe(), "BF16[3, 5] on cpu");
  EXPECT_EQ(t.reshape({15}).data(), t.data());
  EXPECT_THROW(t.reshape({4, 4}), Error);
  EXPECT_THROW(t.data_as<float>(), Error);
}

TEST(Tensor, CopyIsIndependent) {
  Tensor a = Tensor::empty({4}, DType::f32);
  for (int i = 0; i < 4; ++i) a.data_as<float>()[i] = static_cast<float>(i);
  Tensor b = a.to(Device::cpu);
  a.data_as<float>()[0] = 42.0f;
  EXPECT_EQ(b.data_as<float>()[0], 0.0f);
  EXPECT_EQ(b.data_as<float>()[3], 3.0f);
}

TEST(Tensor, RowsShareStorage) {
  Tensor t = Tensor::zeros({4, 3}, DType::f32);
  Tensor middle = t.rows(1, 2);
  EXPECT_EQ(middle.shape(), (Shape{2, 3}));
  middle.data_as<float>()[0] = 5.0f;  // row 1, column 0
  EXPECT_EQ(t.data_as<float>()[3], 5.0f);
  EXPECT_EQ(t.rows(4, 0).numel(), 0);
  EXPECT_THROW(t.rows(3, 2), Error);
  EXPECT_THROW(t.rows(-1, 1), Error);
}

TEST(Tensor, ParseDevice) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu);
  EXPECT_THROW(parse_device("tpu"), Error);
}

// Shapes come from files (safetensors headers, bitsandbytes JSON); found by fuzzing (issue 5).
TEST(Tensor, ShapeWhoseElementCountOverflowsIsAnError) {
  EXPECT_EQ(shape_numel({int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
  EXPECT_THROW(shape_numel({int64_t{1} << 32, int64_t{1} << 32}), Error);
  EXPECT_THROW(shape_numel({3, int64_t{1} << 62}), Error);
}
