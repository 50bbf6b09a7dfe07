// Element types, their sizes and their names in the formats we read and write
// (safetensors "BF16", torch "bfloat16"). dtype is always a runtime value, never a build flag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nibble {

enum class DType : uint8_t { f32, f16, bf16, f64, u8, i8, i16, u16, i32, u32, i64, u64, boolean };

size_t dtype_size(DType dtype);
bool dtype_is_float(DType dtype);

// safetensors spelling: "F32", "BF16", "U8", ...
std::string_view dtype_safetensors_name(DType dtype);
std::optional<DType> dtype_from_safetensors_name(std::string_view name);

// torch spelling without the "torch." prefix: "float32", "bfloat16", "uint8", ...
std::string_view dtype_torch_name(DType dtype);
std::optional<DType> dtype_from_torch_name(std::string_view name);

}  // namespace nibble
