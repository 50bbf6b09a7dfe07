// ggml's tensor element types as GGUF files store them (research/formats.md section 7.2): the
// type ids, their block geometry, and a dequantizer to float for the ones nibble imports.
//
// A quantized row is a sequence of blocks along ne[0] (the fastest-varying dimension); each
// block holds `block_elements` values in `block_bytes` bytes. Little-endian throughout; scales
// d, m, dmin are IEEE fp16.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace nibble {

// ggml_type ids (ggml.h). Only the ones with a geometry below can appear in a file nibble opens.
enum class GgmlType : uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  bf16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;        // ggml's spelling in upper case: "Q4_K", "BF16"
  int64_t block_elements;  // values per block (1 for F32/F16/BF16)
  int64_t block_bytes;     // bytes per block
};

// The geometry of a type nibble can dequantize, or nullopt for any other id (an IQ type, a
// removed or unknown id).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id);

// "Q4_K", "IQ2_XXS", ... for every id ggml has defined, and "type 99" for the rest: for
// error messages.
std::string ggml_type_name(uint32_t id);

// The supported types, comma-separated, for error messages.
const char* ggml_supported_types();

// Dequantizes `count` values (a multiple of the type's block_elements) from `blocks`, which
// holds count / block_elements * block_bytes bytes, to `out`. Scalars are computed in float
// exactly as ggml's dequantize_row_* reference functions do, so the values match llama.cpp's.
void ggml_dequantize(GgmlType type, const uint8_t* blocks, float* out, int64_t count);

}  // namespace nibble
