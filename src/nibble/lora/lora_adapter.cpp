#include "nibble/lora/lora_adapter.h"

#include <cmath>

#include "nibble/core/half.h"
#include "nibble/core/rng.h"

namespace nibble {

namespace {

// "LoRA" in ASCII, above any layer/linear numbering.
constexpr uint64_t kLoraInitDomain = uint64_t{0x4C6F5241} << 32;

void fill_uniform(Tensor& t, uint64_t seed, uint64_t stream, float bound) {
  Rng(seed, stream).fill_uniform(t.data_as<float>(), t.numel(), -bound, bound);
}

}  // namespace

const LoraLinear* LoraAdapter::find(const std::string& module) const {
  for (const LoraLinear& l : linears) {
    if (l.target.module == module) return &l;
  }
  return nullptr;
}

LoraLinear* LoraAdapter::find(const std::string& module) {
  return const_cast<LoraLinear*>(static_cast<const LoraAdapter*>(this)->find(module));
}

int64_t LoraAdapter::parameter_count() const {
  int64_t n = 0;
  for (const LoraLinear& l : linears) n += l.a.numel() + l.b.numel();
  return n;
}

uint64_t lora_init_stream(int64_t layer, int64_t linear, bool lora_b) {
  return kLoraInitDomain | (static_cast<uint64_t>(layer) << 8) | (static_cast<uint64_t>(linear) << 1) |
         (lora_b ? 1u : 0u);
}

LoraAdapter lora_init(const LoraConfig& config, const ModelShape& shape, uint64_t seed) {
  LoraAdapter adapter;
  adapter.config = config;
  for (LoraTarget& t : lora_resolve_targets(config, shape)) {
    LoraLinear l;
    l.scaling = lora_scaling(t.alpha, t.r, config.use_rslora);
    l.a = Tensor::empty({t.r, t.in}, DType::f32);
    l.b = Tensor::zeros({t.out, t.r}, DType::f32);
    const uint64_t stream_a = lora_init_stream(t.layer, t.linear, false);
    // kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in).
    if (config.init_lora_weights == LoraInit::gaussian) {
      Rng(seed, stream_a).fill_normal(l.a.data_as<float>(), l.a.numel(), 0.0f, 1.0f / static_cast<float>(t.r));
    } else {
      fill_uniform(l.a, seed, stream_a, 1.0f / std::sqrt(static_cast<float>(t.in)));
    }
    if (config.init_lora_weights == LoraInit::none)
      fill_uniform(l.b, seed, lora_init_stream(t.layer, t.linear, true), 1.0f / std::sqrt(static_cast<float>(t.r)));
    l.target = std::move(t);
    adapter.linears.push_back(std::move(l));
  }
  return adapter;
}

namespace {

Tensor rounded_copy(const Tensor& master, DType dtype) {
  const Tensor src = master.device() == Device::cpu ? master : master.to(Device::cpu);
  const float* x = src.data_as<float>();
  Tensor out = Tensor::empty(src.shape(), dtype);
  const int64_t n = src.numel();
  switch (dtype) {
    case DType::f32:
      out.copy_from(src);
      break;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) out.data_as<bf16_t>()[i] = float_to_bf16(x[i]);
      break;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) out.data_as<fp16_t>()[i] = float_to_fp16(x[i]);
      break;
    default:
      fail("lora_compute_copy: dtype {}; expected F32, BF16 or F16", dtype_safetensors_name(dtype));
  }
  return out;
}

}  // namespace

LoraComputeCopy lora_compute_copy(const LoraLinear& linear, DType dtype) {
  return {rounded_copy(linear.a, dtype), rounded_copy(linear.b, dtype)};
}

}  // namespace nibble
