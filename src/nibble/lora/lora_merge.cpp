#include "nibble/lora/lora_merge.h"

#include <vector>

#include "nibble/core/half.h"
#include "nibble/quant/quantize.h"

namespace nibble {

namespace {

float element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::f32: return t.data_as<float>()[i];
    case DType::bf16: return bf16_to_float(t.data_as<bf16_t>()[i]);
    case DType::f16: return fp16_to_float(t.data_as<fp16_t>()[i]);
    default: NIBBLE_ASSERT(false);
  }
  return 0.0f;
}

void store(Tensor& t, int64_t i, float v) {
  switch (t.dtype()) {
    case DType::f32: t.data_as<float>()[i] = v; break;
    case DType::bf16: t.data_as<bf16_t>()[i] = float_to_bf16(v); break;
    case DType::f16: t.data_as<fp16_t>()[i] = float_to_fp16(v); break;
    default: NIBBLE_ASSERT(false);
  }
}

bool is_16_or_32_bit_float(DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; }

}  // namespace

Tensor lora_merge(const Tensor& weight, const LoraLinear& adapter, DType out) {
  const LoraTarget& t = adapter.target;
  NIBBLE_CHECK(weight.shape() == Shape({t.out, t.in}), "merging the adapter of {}: base weight is {}; expected [{}, {}]",
               t.module, weight.describe(), t.out, t.in);
  NIBBLE_CHECK(is_16_or_32_bit_float(weight.dtype()), "merging the adapter of {}: base weight is {}; expected F32, "
               "BF16 or F16", t.module, weight.describe());
  NIBBLE_CHECK(is_16_or_32_bit_float(out), "merging the adapter of {}: output dtype {}; expected F32, BF16 or F16",
               t.module, dtype_safetensors_name(out));
  NIBBLE_CHECK(adapter.a.shape() == Shape({t.r, t.in}) && adapter.b.shape() == Shape({t.out, t.r}) &&
                   adapter.a.dtype() == DType::f32 && adapter.b.dtype() == DType::f32,
               "merging the adapter of {}: A is {}, B is {}; expected F32 [{}, {}] and F32 [{}, {}]", t.module,
               adapter.a.describe(), adapter.b.describe(), t.r, t.in, t.out, t.r);
  const Tensor w = weight.device() == Device::cpu ? weight : weight.to(Device::cpu);
  const Tensor a_host = adapter.a.device() == Device::cpu ? adapter.a : adapter.a.to(Device::cpu);
  const Tensor b_host = adapter.b.device() == Device::cpu ? adapter.b : adapter.b.to(Device::cpu);
  const float* a = a_host.data_as<float>();  // [R, K]
  const float* b = b_host.data_as<float>();  // [N, R]
  const float scaling = static_cast<float>(adapter.scaling);  // torch scales an fp32 tensor in fp32

  Tensor merged = Tensor::empty({t.out, t.in}, out);
  std::vector<float> delta(static_cast<size_t>(t.in));
  for (int64_t n = 0; n < t.out; ++n) {
    // delta[k] = sum_r B[n, r] * A[r, k], summed in r order.
    std::fill(delta.begin(), delta.end(), 0.0f);
    for (int64_t r = 0; r < t.r; ++r) {
      const float bnr = b[n * t.r + r];
      const float* a_row = a + r * t.in;
      for (int64_t k = 0; k < t.in; ++k) delta[k] += bnr * a_row[k];
    }
    for (int64_t k = 0; k < t.in; ++k) {
      const int64_t i = n * t.in + k;
      store(merged, i, element(w, i) + delta[k] * scaling);
    }
  }
  return merged;
}

Tensor lora_merge_4bit(const QuantizedWeight& weight, const LoraLinear& adapter, DType out) {
  check_quantized_weight(weight, adapter.target.module.c_str());
  return lora_merge(dequantize_4bit(weight, DType::f32).reshape(weight.shape), adapter, out);
}

}  // namespace nibble
