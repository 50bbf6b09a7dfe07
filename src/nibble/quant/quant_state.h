// A weight quantized to 4 bits in bitsandbytes' layout, with or without Double Quantization.
// This is the in-memory form of what bitsandbytes calls a QuantState plus its packed weight;
// io/ reads and writes it as bitsandbytes' serialization, quant/ makes and consumes it.
// The rules for every byte are in ../shared/research/bnb-format.md.
#pragma once

#include <cstdint>
#include <string_view>

#include "nibble/core/tensor.h"

namespace nibble {

enum class QuantType : uint8_t { nf4, fp4 };

std::string_view quant_type_name(QuantType type);  // "nf4" / "fp4"
QuantType parse_quant_type(std::string_view name);  // throws nibble::Error on anything else

struct QuantConfig {
  QuantType type = QuantType::nf4;
  int64_t blocksize = 64;      // 32..4096, a power of two
  bool double_quant = true;    // bnb_4bit_use_double_quant
};

struct QuantizedWeight {
  QuantType type = QuantType::nf4;
  int64_t blocksize = 64;
  DType dtype = DType::bf16;  // the original weight's dtype; dequantize returns this by default
  Shape shape;                // the original weight's shape, e.g. [out_features, in_features]

  Tensor packed;  // U8 [(n+1)/2, 1]: two codes a byte, first element in the high nibble
  Tensor code;    // F32 [16]: the 4-bit table as stored (quant_map)

  // Without DQ: absmax is F32 [blocks]. With DQ: absmax is U8 [blocks] (8-bit codes of
  // absmax - offset), nested_absmax F32 [ceil(blocks/256)], nested_code F32 [256] (the signed
  // dynamic map as stored; a loader must use the stored one), offset the float32 mean.
  Tensor absmax;
  bool double_quant = false;
  Tensor nested_absmax;
  Tensor nested_code;
  float offset = 0.0f;
  int64_t nested_blocksize = 256;

  int64_t numel() const { return shape_numel(shape); }
  int64_t blocks() const { return (numel() + blocksize - 1) / blocksize; }
  Device device() const { return packed.device(); }
};

}  // namespace nibble
