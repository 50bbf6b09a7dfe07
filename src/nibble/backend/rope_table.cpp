#include "nibble/backend/rope_table.h"

#include <cmath>

namespace nibble {

namespace {

// Every helper is one fp32 operation of transformers; doing it in float (SSE, no fast-math)
// rounds exactly as torch's fp32 kernels. pow and cos/sin go through double and are rounded
// once, i.e. correctly rounded, which torch's fp32 versions match to within an ulp.
float reciprocal(float x) { return 1.0f / x; }

void check_config(const RopeConfig& c, int64_t head_dim) {
  NIBBLE_CHECK(head_dim > 0 && head_dim % 2 == 0, "RoPE: head_dim must be positive and even, got {}", head_dim);
  NIBBLE_CHECK(c.theta > 0, "RoPE: rope_theta must be positive, got {}", c.theta);
  if (c.type != RopeType::default_rope)
    NIBBLE_CHECK(c.factor > 0, "RoPE: scaling factor must be positive, got {}", c.factor);
  if (c.type == RopeType::llama3) {
    NIBBLE_CHECK(c.high_freq_factor > c.low_freq_factor && c.low_freq_factor > 0,
                 "RoPE llama3: expected 0 < low_freq_factor < high_freq_factor, got {} and {}",
                 c.low_freq_factor, c.high_freq_factor);
    NIBBLE_CHECK(c.original_max_position_embeddings > 0,
                 "RoPE llama3: original_max_position_embeddings must be positive, got {}",
                 c.original_max_position_embeddings);
  }
}

}  // namespace

std::vector<float> rope_inv_freq(const RopeConfig& config, int64_t head_dim) {
  check_config(config, head_dim);
  const int64_t half = head_dim / 2;
  const float base = static_cast<float>(config.theta);
  const float dim = static_cast<float>(head_dim);
  std::vector<float> inv_freq(half);
  // _compute_default_rope_parameters: 1.0 / (base ** (arange(0, dim, 2).float() / dim)).
  for (int64_t i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / dim;
    float power = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    inv_freq[i] = reciprocal(power);
  }
  const float factor = static_cast<float>(config.factor);
  if (config.type == RopeType::linear) {
    for (float& f : inv_freq) f = f / factor;  // inv_freq /= factor
  } else if (config.type == RopeType::llama3) {
    // _compute_llama3_parameters; the Python scalars become fp32 when they meet an fp32 tensor.
    const float low = static_cast<float>(config.low_freq_factor);
    const double old_context = static_cast<double>(config.original_max_position_embeddings);
    const float low_freq_wavelen = static_cast<float>(old_context / config.low_freq_factor);
    const float high_freq_wavelen = static_cast<float>(old_context / config.high_freq_factor);
    const float two_pi = static_cast<float>(2 * M_PI);
    const float band = static_cast<float>(config.high_freq_factor - config.low_freq_factor);
    const float old_context_f = static_cast<float>(old_context);
    for (float& f : inv_freq) {
      float wavelen = reciprocal(f) * two_pi;  // 2 * math.pi / inv_freq
      float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      float smooth = (reciprocal(wavelen) * old_context_f - low) / band;
      float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
      bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      f = medium ? smoothed : scaled;
    }
  }
  return inv_freq;
}

RopeTable rope_table_build(const RopeConfig& config, int64_t head_dim, int64_t positions, Device device) {
  NIBBLE_CHECK(positions > 0, "RoPE table: positions must be positive, got {}", positions);
  std::vector<float> inv_freq = rope_inv_freq(config, head_dim);
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  Tensor cos = Tensor::empty({positions, half}, DType::f32);
  Tensor sin = Tensor::empty({positions, half}, DType::f32);
  float* c = cos.data_as<float>();
  float* s = sin.data_as<float>();
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t j = 0; j < half; ++j) {
      float angle = static_cast<float>(p) * inv_freq[j];
      c[p * half + j] = static_cast<float>(std::cos(static_cast<double>(angle)));
      s[p * half + j] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  if (device == Device::cpu) return RopeTable{cos, sin};
  return RopeTable{cos.to(device, MemoryCategory::unquantized), sin.to(device, MemoryCategory::unquantized)};
}

}  // namespace nibble
