#include "nibble/core/dtype.h"

#include <array>

namespace nibble {

namespace {

struct DTypeInfo {
  DType dtype;
  size_t size;
  bool is_float;
  std::string_view safetensors;
  std::string_view torch;
};

constexpr std::array<DTypeInfo, 13> kTypes = {{
    {DType::f32, 4, true, "F32", "float32"},
    {DType::f16, 2, true, "F16", "float16"},
    {DType::bf16, 2, true, "BF16", "bfloat16"},
    {DType::f64, 8, true, "F64", "float64"},
    {DType::u8, 1, false, "U8", "uint8"},
    {DType::i8, 1, false, "I8", "int8"},
    {DType::i16, 2, false, "I16", "int16"},
    {DType::u16, 2, false, "U16", "uint16"},
    {DType::i32, 4, false, "I32", "int32"},
    {DType::u32, 4, false, "U32", "uint32"},
    {DType::i64, 8, false, "I64", "int64"},
    {DType::u64, 8, false, "U64", "uint64"},
    {DType::boolean, 1, false, "BOOL", "bool"},
}};

const DTypeInfo& info(DType dtype) { return kTypes[static_cast<size_t>(dtype)]; }

}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
bool dtype_is_float(DType dtype) { return info(dtype).is_float; }
std::string_view dtype_safetensors_name(DType dtype) { return info(dtype).safetensors; }
std::string_view dtype_torch_name(DType dtype) { return info(dtype).torch; }

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.safetensors == name) return t.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name.substr(0, 6) == "torch.") name.remove_prefix(6);
  for (const auto& t : kTypes)
    if (t.torch == name) return t.dtype;
  if (name == "half") return DType::f16;
  if (name == "float") return DType::f32;
  return std::nullopt;
}

}  // namespace nibble
