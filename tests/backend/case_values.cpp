#include "case_values.h"

#include <cmath>

#include "nibble/core/half.h"

namespace nibble::test {

double eps_of(DType dtype) {
  switch (dtype) {
    case DType::bf16: return std::ldexp(1.0, -7);
    case DType::f16: return std::ldexp(1.0, -10);
    default: return std::ldexp(1.0, -23);
  }
}

std::string dtype_tag(DType dtype) { return std::string(dtype_safetensors_name(dtype)); }

double round_ref(DType dtype, double x) {
  float f = static_cast<float>(x);
  if (dtype == DType::bf16) return bf16_to_float(float_to_bf16(f));
  if (dtype == DType::f16) return fp16_to_float(float_to_fp16(f));
  return f;
}

std::vector<double> doubles(const Tensor& tensor) {
  Tensor t = tensor.device() == Device::cpu ? tensor : tensor.to(Device::cpu);
  std::vector<double> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::f32: out[i] = t.data_as<float>()[i]; break;
      case DType::bf16: out[i] = bf16_to_float(t.data_as<bf16_t>()[i]); break;
      case DType::f16: out[i] = fp16_to_float(t.data_as<fp16_t>()[i]); break;
      case DType::i32: out[i] = t.data_as<int32_t>()[i]; break;
      default: fail("doubles: unexpected {}", t.describe());
    }
  }
  return out;
}

Tensor host_tensor(DType dtype, const Shape& shape, const std::vector<double>& values) {
  Tensor t = Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float f = static_cast<float>(values[i]);
    switch (dtype) {
      case DType::f32: t.data_as<float>()[i] = f; break;
      case DType::bf16: t.data_as<bf16_t>()[i] = float_to_bf16(f); break;
      case DType::f16: t.data_as<fp16_t>()[i] = float_to_fp16(f); break;
      case DType::i32: t.data_as<int32_t>()[i] = static_cast<int32_t>(values[i]); break;
      default: fail("host_tensor: unexpected dtype {}", dtype_safetensors_name(dtype));
    }
  }
  return t;
}

InputSpec normal(Shape shape, DType dtype, double scale, double mean) {
  return InputSpec{std::move(shape), dtype, InputSpec::Kind::normal, mean, scale, 0};
}
InputSpec index(Shape shape, int64_t limit) {
  return InputSpec{std::move(shape), DType::i32, InputSpec::Kind::index, 0, 0, limit};
}

}  // namespace nibble::test
