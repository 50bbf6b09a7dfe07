// CPU reference of bnb-format.md sections 1 and 2. Plain loops; correctness over speed.
// The host build uses ISO C++ (-std=c++17, no GNU extensions), so g++ does not contract a
// multiply and a later add into an FMA; each product and sum below is one float32 rounding.
#include "nibble/quant/quantize_cpu.h"
#include "nibble/quant/torch_mean.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/quant/formats.h"
#include "nibble/quant/sizes.h"

namespace nibble {

void quant_check_blocksize(int64_t blocksize, const char* what) {
  bool power_of_two = blocksize > 0 && (blocksize & (blocksize - 1)) == 0;
  NIBBLE_CHECK(power_of_two && blocksize >= 32 && blocksize <= 4096,
               "{}: block size {} is not allowed; expected one of 32, 64, 128, 256, 512, 1024, 2048, 4096", what,
               blocksize);
}

void blockwise_absmax_cpu(const float* x, int64_t n, int64_t blocksize, float* absmax) {
  int64_t blocks = quant_blocks(n, blocksize);
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t begin = b * blocksize;
    int64_t end = begin + blocksize < n ? begin + blocksize : n;
    // bnb starts from -FLT_MAX and takes fmaxf, which drops NaN. Its kernel loads a partial
    // last block padded with 0.0, and the padding takes part in the max.
    float m = end - begin < blocksize ? 0.0f : -FLT_MAX;
    for (int64_t i = begin; i < end; ++i) m = std::fmax(m, std::fabs(x[i]));
    absmax[b] = m;
  }
}

namespace {

uint32_t quantize_scaled(QuantType type, float s) {
  return type == QuantType::nf4 ? nf4_quantize_scaled(s) : fp4_quantize_scaled(s);
}

float dequant_table_value(QuantType type, uint32_t code) {
  return bits_float(type == QuantType::nf4 ? nf4_code_bits(static_cast<int>(code))
                                           : fp4_dequant_bits(static_cast<int>(code)));
}

std::vector<float> to_float(const void* x, DType dtype, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  if (dtype == DType::f32) {
    const float* p = static_cast<const float*>(x);
    for (int64_t i = 0; i < n; ++i) out[i] = p[i];
  } else if (dtype == DType::bf16) {
    const bf16_t* p = static_cast<const bf16_t*>(x);
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(p[i]);
  } else if (dtype == DType::f16) {
    const fp16_t* p = static_cast<const fp16_t*>(x);
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(p[i]);
  } else {
    fail("4-bit quantization input has dtype {}; expected F32, F16 or BF16", dtype_safetensors_name(dtype));
  }
  return out;
}

}  // namespace

void quantize_4bit_codes_cpu(const float* x, const float* absmax, int64_t n, int64_t blocksize, QuantType type,
                             uint8_t* packed) {
  int64_t bytes = quant_packed_bytes(n);
  for (int64_t j = 0; j < bytes; ++j) {
    uint32_t codes[2];
    for (int64_t e = 0; e < 2; ++e) {
      int64_t i = 2 * j + e;
      // The padding element of an odd n is a 0.0 in the last block, scaled like the others.
      float value = i < n ? x[i] : 0.0f;
      // IEEE reciprocal; bnb's GPU uses rcp.approx (see quantize_cpu.h).
      float reciprocal = 1.0f / absmax[i / blocksize];
      codes[e] = quantize_scaled(type, value * reciprocal);
    }
    packed[j] = pack_nibbles(codes[0], codes[1]);
  }
}

void quantize_4bit_cpu(const void* x, DType dtype, int64_t n, int64_t blocksize, QuantType type, uint8_t* packed,
                       float* absmax) {
  quant_check_blocksize(blocksize, "quantize_4bit");
  std::vector<float> values = to_float(x, dtype, n);
  blockwise_absmax_cpu(values.data(), n, blocksize, absmax);
  quantize_4bit_codes_cpu(values.data(), absmax, n, blocksize, type, packed);
}

void dequantize_4bit_cpu(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize, QuantType type,
                         void* out, DType out_dtype) {
  NIBBLE_CHECK(out_dtype == DType::f32 || out_dtype == DType::f16 || out_dtype == DType::bf16,
               "dequantize_4bit: output dtype {} is not supported; expected F32, F16 or BF16",
               dtype_safetensors_name(out_dtype));
  // Block by block with the 16 code values at hand: the same product per element, without a
  // division and a dtype switch per element (this runs for every 4-bit linear of every CPU forward).
  float table[16];
  for (uint32_t c = 0; c < 16; ++c) table[c] = dequant_table_value(type, c);
  auto run = [&](auto store) {
    for (int64_t start = 0; start < n; start += blocksize) {
      const float scale = absmax[start / blocksize];
      const int64_t end = std::min(n, start + blocksize);
      for (int64_t i = start; i < end; ++i) store(i, table[unpack_nibble(packed[i / 2], i)] * scale);
    }
  };
  if (out_dtype == DType::f32) {
    float* o = static_cast<float*>(out);
    run([o](int64_t i, float v) { o[i] = v; });
  } else if (out_dtype == DType::bf16) {
    bf16_t* o = static_cast<bf16_t*>(out);
    run([o](int64_t i, float v) { o[i] = float_to_bf16(v); });
  } else {
    fp16_t* o = static_cast<fp16_t*>(out);
    run([o](int64_t i, float v) { o[i] = float_to_fp16(v); });
  }
}

void quantize_8bit_blockwise_cpu(const float* x, int64_t n, int64_t blocksize, const float* map, uint8_t* codes,
                                 float* absmax) {
  blockwise_absmax_cpu(x, n, blocksize, absmax);
  for (int64_t i = 0; i < n; ++i) {
    float reciprocal = 1.0f / absmax[i / blocksize];  // IEEE; bnb's GPU uses rcp.approx
    codes[i] = static_cast<uint8_t>(quantize_8bit_search(map, x[i] * reciprocal));
  }
}

float double_quantize_cpu(const float* absmax, int64_t nb, uint8_t* codes, float* nested_absmax) {
  NIBBLE_CHECK(nb > 0, "double quantization of an empty absmax vector");
  // bitsandbytes takes the offset as torch's float32 `absmax.mean()` on the GPU; its bits depend
  // on ATen's order of additions, which torch_mean.h reproduces.
  float offset = torch_cuda_mean_f32(absmax, nb);
  std::vector<float> centered(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i) centered[i] = absmax[i] - offset;
  float map[kDynamicMapSize];
  signed_dynamic_map(map);
  quantize_8bit_blockwise_cpu(centered.data(), nb, kDoubleQuantBlocksize, map, codes, nested_absmax);
  return offset;
}

void dequantize_absmax_cpu(const uint8_t* codes, const float* nested_absmax, const float* map, float offset,
                           int64_t nb, int64_t nested_blocksize, float* absmax) {
  for (int64_t i = 0; i < nb; ++i) {
    float scaled = map[codes[i]] * nested_absmax[i / nested_blocksize];  // rounding 1
    absmax[i] = scaled + offset;                                          // rounding 2
  }
}

void signed_dynamic_map(float* map) {
  for (int i = 0; i < kDynamicMapSize; ++i) map[i] = bits_float(signed_dynamic_map_bits(i));
}

}  // namespace nibble
