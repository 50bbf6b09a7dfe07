// GGUF files (llama.cpp's model format; research/formats.md section 7): a memory-mapped reader
// that validates the whole header before any tensor byte is touched.
//
// Layout (little-endian): "GGUF", u32 version (2 or 3), u64 tensor count, u64 metadata count;
// the metadata key/value pairs; the tensor infos (name, dims, ggml type, offset); padding to the
// alignment (general.alignment, default 32); the tensor data, each tensor at its offset from
// the start of that section. A string is a u64 byte length and the bytes, without a NUL.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nibble/core/tensor.h"
#include "nibble/io/gguf_dequant.h"

namespace nibble {

enum class GgufValueType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

// "u32", "string", "array", ...
const char* gguf_value_type_name(GgufValueType type);

// One metadata value as the file holds it; `data` points into the file's mapping and is valid
// while the GgufFile (or a copy of it) lives. Read it through GgufFile's typed accessors.
struct GgufValue {
  GgufValueType type = GgufValueType::u8;
  GgufValueType element_type = GgufValueType::u8;  // arrays only
  uint64_t count = 1;                              // elements of an array; 1 for a scalar
  const unsigned char* data = nullptr;             // the scalar, or the first array element
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] varies fastest (an HF [out, in] weight is [in, out])
  GgmlTypeInfo type;
  uint64_t offset = 0;  // from the start of the data section; a multiple of the alignment
  uint64_t nbytes = 0;

  int64_t numel() const;
  // Row-major shape, the reverse of ne: [out, in] for a weight; [1] for a 0-dimensional tensor.
  Shape shape() const;
};

class GgufFile {
 public:
  // Maps the file read-only and validates it: magic, version 2 or 3, counts that fit in the
  // file, every key/value (known types, no arrays of arrays, bools 0 or 1, unique keys),
  // general.alignment (a u32 power of two), every tensor info (unique name, at most 4
  // dimensions, element count and byte size without overflow, a type nibble can dequantize, rows
  // a whole number of blocks, an aligned offset, the bytes inside the file, no two tensors
  // overlapping). Bad input throws nibble::Error naming the file, the key or tensor, and what
  // was expected; nothing is allocated from a count before the count is checked against the
  // bytes left in the file.
  static GgufFile open(const std::string& path);

  const std::string& path() const;
  uint32_t version() const;
  uint64_t alignment() const;
  uint64_t data_offset() const;  // file offset of the data section
  uint64_t file_size() const;

  // Metadata, keys in file order.
  const std::vector<std::string>& keys() const;
  bool has(const std::string& key) const;
  const GgufValue* find(const std::string& key) const;  // null when absent

  // Typed reads. Each throws nibble::Error naming the file and key when the key is absent or
  // holds another type: string() a string; integer() any integer type (not bool) whose value
  // fits in int64; number() f32, f64 or an integer; boolean() a bool. The arrays: element type
  // string, integer or number in the same sense.
  std::string string(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  bool boolean(const std::string& key) const;
  std::vector<std::string> string_array(const std::string& key) const;
  std::vector<int64_t> integer_array(const std::string& key) const;
  std::vector<double> number_array(const std::string& key) const;
  // Human-readable type of a key ("u32", "array of string"), for messages.
  std::string type_of(const std::string& key) const;

  // Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensors() const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // null when absent
  // Throws naming the file and tensor when absent.
  const GgufTensorInfo& tensor(const std::string& name) const;
  // The tensor's bytes in the mapping (nbytes of them).
  const unsigned char* tensor_data(const GgufTensorInfo& info) const;
  // The tensor as F32, row-major with shape info.shape().
  Tensor dequantize(const GgufTensorInfo& info) const;

  struct Contents;  // the mapping and the parsed header, shared by copies

 private:
  std::shared_ptr<const Contents> contents_;
};

}  // namespace nibble
