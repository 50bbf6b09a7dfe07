// The GGUF reader: mapping, header validation, typed metadata, tensor bytes.
#include "nibble/io/gguf.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "nibble/core/error.h"
#include "nibble/io/file_mapping.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF data is little-endian; so is every host we run on");

namespace nibble {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// The smallest possible encodings, to bound counts by the bytes left before trusting them:
// a key/value is a key length (8), a type (4) and at least a one-byte value; a tensor info is
// a name length (8), a dimension count (4), a type (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 24;


// Sequential reads of the header; every read is checked against the end of the file.
class Cursor {
 public:
  Cursor(const std::string& path, const unsigned char* data, uint64_t size) : path_(path), data_(data), size_(size) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }

  void need(uint64_t bytes, const std::string& what) const {
    NIBBLE_CHECK(bytes <= remaining(), "{}: file truncated: {} at byte {} needs {} bytes, but only {} are left; "
                 "expected a complete GGUF file", path_, what, position_, bytes, remaining());
  }
  const unsigned char* skip(uint64_t bytes, const std::string& what) {
    need(bytes, what);
    const unsigned char* at = data_ + position_;
    position_ += bytes;
    return at;
  }
  uint32_t u32(const std::string& what) {
    uint32_t v;
    std::memcpy(&v, skip(4, what), 4);
    return v;
  }
  uint64_t u64(const std::string& what) {
    uint64_t v;
    std::memcpy(&v, skip(8, what), 8);
    return v;
  }
  std::string_view string(const std::string& what) {
    uint64_t length = u64(what + " length");
    const unsigned char* bytes = skip(length, what);
    return std::string_view(reinterpret_cast<const char*>(bytes), length);
  }

 private:
  const std::string& path_;
  const unsigned char* data_;
  uint64_t size_;
  uint64_t position_ = 0;
};

// Bytes of one fixed-size value; 0 for string and array.
uint64_t scalar_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    default: return 0;
  }
}

bool is_integer_type(GgufValueType type) {
  switch (type) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::u16: case GgufValueType::i16:
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::u64: case GgufValueType::i64:
      return true;
    default:
      return false;
  }
}

GgufValueType value_type(const std::string& path, uint32_t raw, const std::string& what) {
  NIBBLE_CHECK(raw <= static_cast<uint32_t>(GgufValueType::f64), "{}: {} has value type {}; expected 0..12 (u8, "
               "i8, u16, i16, u32, i32, f32, bool, string, array, u64, i64, f64)", path, what, raw);
  return static_cast<GgufValueType>(raw);
}

// Reads one value of `type` (not an array) at the cursor and checks it.
void read_scalar(Cursor& cursor, const std::string& path, GgufValueType type, const std::string& what) {
  if (type == GgufValueType::string) {
    cursor.string(what);
    return;
  }
  const unsigned char* at = cursor.skip(scalar_bytes(type), what);
  if (type == GgufValueType::boolean)
    NIBBLE_CHECK(*at <= 1, "{}: {} is a bool holding {}; expected 0 or 1", path, what, *at);
}

// Decodes one integer element; false when the value does not fit in int64 (a u64 above 2^63-1).
bool integer_at(GgufValueType type, const unsigned char* p, int64_t& out) {
  switch (type) {
    case GgufValueType::u8: out = *p; return true;
    case GgufValueType::i8: out = static_cast<int8_t>(*p); return true;
    case GgufValueType::u16: { uint16_t v; std::memcpy(&v, p, 2); out = v; return true; }
    case GgufValueType::i16: { int16_t v; std::memcpy(&v, p, 2); out = v; return true; }
    case GgufValueType::u32: { uint32_t v; std::memcpy(&v, p, 4); out = v; return true; }
    case GgufValueType::i32: { int32_t v; std::memcpy(&v, p, 4); out = v; return true; }
    case GgufValueType::i64: { std::memcpy(&out, p, 8); return true; }
    case GgufValueType::u64: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      if (v > static_cast<uint64_t>(INT64_MAX)) return false;
      out = static_cast<int64_t>(v);
      return true;
    }
    default: return false;
  }
}

double float_at(GgufValueType type, const unsigned char* p) {
  if (type == GgufValueType::f32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  double v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string_view string_at(const unsigned char* p, uint64_t& consumed) {
  uint64_t length;
  std::memcpy(&length, p, 8);
  consumed = 8 + length;
  return std::string_view(reinterpret_cast<const char*>(p + 8), length);
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::u8: return "u8";
    case GgufValueType::i8: return "i8";
    case GgufValueType::u16: return "u16";
    case GgufValueType::i16: return "i16";
    case GgufValueType::u32: return "u32";
    case GgufValueType::i32: return "i32";
    case GgufValueType::f32: return "f32";
    case GgufValueType::boolean: return "bool";
    case GgufValueType::string: return "string";
    case GgufValueType::array: return "array";
    case GgufValueType::u64: return "u64";
    case GgufValueType::i64: return "i64";
    case GgufValueType::f64: return "f64";
  }
  return "unknown";
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // checked against overflow when the file was opened
  return n;
}

Shape GgufTensorInfo::shape() const {
  if (ne.empty()) return {1};
  return Shape(ne.rbegin(), ne.rend());
}

struct GgufFile::Contents {
  std::string path;
  std::shared_ptr<const FileMapping> mapping;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<std::string> keys;
  std::unordered_map<std::string, GgufValue> values;
  std::vector<GgufTensorInfo> tensors;
  std::unordered_map<std::string, size_t> tensor_index;
};

namespace {

void read_metadata(Cursor& cursor, GgufFile::Contents& c, uint64_t kv_count) {
  const std::string& path = c.path;
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key(cursor.string(fmt::format("metadata key {}", i)));
    NIBBLE_CHECK(!key.empty(), "{}: metadata key {} is empty; expected a name such as general.architecture", path, i);
    const std::string what = fmt::format("metadata '{}'", key);
    GgufValue value;
    value.type = value_type(path, cursor.u32(what + " type"), what);
    if (value.type == GgufValueType::array) {
      value.element_type = value_type(path, cursor.u32(what + " element type"), what + " (array element)");
      NIBBLE_CHECK(value.element_type != GgufValueType::array, "{}: {} is an array of arrays; expected an array of "
                   "scalars or strings", path, what);
      value.count = cursor.u64(what + " array length");
      // Bound the count by the bytes left before walking it: every element takes at least
      // one byte (eight for a string's length).
      const uint64_t min_bytes = value.element_type == GgufValueType::string ? 8 : scalar_bytes(value.element_type);
      NIBBLE_CHECK(value.count <= cursor.remaining() / min_bytes, "{}: {} claims {} elements of {}, which needs at "
                   "least {} bytes per element, but only {} bytes are left (file truncated or corrupt)", path, what,
                   value.count, gguf_value_type_name(value.element_type), min_bytes, cursor.remaining());
      value.data = nullptr;
      if (value.element_type == GgufValueType::string) {
        for (uint64_t j = 0; j < value.count; ++j) {
          std::string_view s = cursor.string(fmt::format("{} element {}", what, j));
          if (j == 0) value.data = reinterpret_cast<const unsigned char*>(s.data()) - 8;
        }
      } else if (value.element_type == GgufValueType::boolean) {
        for (uint64_t j = 0; j < value.count; ++j) {
          const unsigned char* at = cursor.skip(1, what);
          if (j == 0) value.data = at;
          NIBBLE_CHECK(*at <= 1, "{}: {} element {} is a bool holding {}; expected 0 or 1", path, what, j, *at);
        }
      } else {
        value.data = cursor.skip(value.count * min_bytes, what);
      }
    } else {
      uint64_t before = cursor.position();
      read_scalar(cursor, path, value.type, what);
      value.data = c.mapping->data() + before;
    }
    NIBBLE_CHECK(c.values.emplace(key, value).second, "{}: metadata key '{}' appears twice; expected unique keys",
                 path, key);
    c.keys.push_back(std::move(key));
  }
}

void read_alignment(GgufFile::Contents& c) {
  auto it = c.values.find("general.alignment");
  if (it == c.values.end()) return;
  const GgufValue& v = it->second;
  NIBBLE_CHECK(v.type == GgufValueType::u32, "{}: general.alignment is {}; expected a u32", c.path,
               gguf_value_type_name(v.type));
  uint32_t alignment;
  std::memcpy(&alignment, v.data, 4);
  NIBBLE_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0, "{}: general.alignment is {}; expected a power "
               "of two", c.path, alignment);
  c.alignment = alignment;
}

GgufTensorInfo read_tensor_info(Cursor& cursor, const GgufFile::Contents& c, uint64_t index) {
  const std::string& path = c.path;
  GgufTensorInfo info;
  info.name = std::string(cursor.string(fmt::format("tensor info {} name", index)));
  NIBBLE_CHECK(!info.name.empty(), "{}: tensor info {} has an empty name; expected a name such as "
               "token_embd.weight", path, index);
  const std::string what = fmt::format("tensor '{}'", info.name);
  const uint32_t n_dims = cursor.u32(what + " dimension count");
  NIBBLE_CHECK(n_dims <= kMaxDims, "{}: {} has {} dimensions; expected at most {}", path, what, n_dims, kMaxDims);
  uint64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t dim = cursor.u64(what + " dimension");
    NIBBLE_CHECK(dim <= static_cast<uint64_t>(INT64_MAX) && !__builtin_mul_overflow(numel, dim, &numel) &&
                     numel <= static_cast<uint64_t>(INT64_MAX),
                 "{}: {} dimension {} is {}, and its element count no longer fits in 63 bits", path, what, d, dim);
    info.ne.push_back(static_cast<int64_t>(dim));
  }
  const uint32_t type = cursor.u32(what + " type");
  std::optional<GgmlTypeInfo> type_info = ggml_type_info(type);
  NIBBLE_CHECK(type_info.has_value(), "{}: {} has type {}, which nibble cannot dequantize; expected one of {}", path,
               what, ggml_type_name(type), ggml_supported_types());
  info.type = *type_info;
  const int64_t row = info.ne.empty() ? 1 : info.ne[0];
  NIBBLE_CHECK(row % info.type.block_elements == 0, "{}: {} is {} with rows of {} values; expected a multiple of "
               "its block of {}", path, what, info.type.name, row, info.type.block_elements);
  const uint64_t blocks = numel / static_cast<uint64_t>(info.type.block_elements);
  NIBBLE_CHECK(!__builtin_mul_overflow(blocks, static_cast<uint64_t>(info.type.block_bytes), &info.nbytes),
               "{}: {} is larger than 2^64 bytes", path, what);
  info.offset = cursor.u64(what + " offset");
  return info;
}

// Tensors must lie inside the data section and not share bytes; gaps are allowed (padding).
void check_tensor_layout(GgufFile::Contents& c, uint64_t data_bytes) {
  const std::string& path = c.path;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : c.tensors) {
    NIBBLE_CHECK(t.offset % c.alignment == 0, "{}: tensor '{}' is at offset {}, not a multiple of the alignment {}",
                 path, t.name, t.offset, c.alignment);
    NIBBLE_CHECK(t.offset <= data_bytes && t.nbytes <= data_bytes - t.offset, "{}: tensor '{}' ({} bytes at data "
                 "offset {}) reaches past the end of the file, whose data section is {} bytes (file truncated?)",
                 path, t.name, t.nbytes, t.offset, data_bytes);
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) {
              return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
            });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = *by_offset[i - 1];
    const GgufTensorInfo& t = *by_offset[i];
    NIBBLE_CHECK(t.offset >= prev.offset + prev.nbytes, "{}: tensor '{}' (data offset {}) overlaps tensor '{}' "
                 "({} bytes at data offset {}); expected each tensor's bytes to be its own", path, t.name, t.offset,
                 prev.name, prev.nbytes, prev.offset);
  }
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  auto contents = std::make_shared<Contents>();
  contents->path = path;
  contents->mapping = std::make_shared<const FileMapping>(path);
  const FileMapping& map = *contents->mapping;
  Cursor cursor(path, map.data(), map.size());

  NIBBLE_CHECK(map.size() >= 4, "{}: file is {} bytes; expected a GGUF file (it starts with \"GGUF\")", path,
               map.size());
  const uint32_t magic = cursor.u32("magic");
  NIBBLE_CHECK(magic == kMagic, "{}: not a GGUF file: it starts with bytes {:02x} {:02x} {:02x} {:02x}; expected "
               "\"GGUF\" (47 47 55 46)", path, map.data()[0], map.data()[1], map.data()[2], map.data()[3]);
  contents->version = cursor.u32("version");
  const uint32_t version = contents->version;
  NIBBLE_CHECK(version == 2 || version == 3, "{}: GGUF version {}{}; expected 2 or 3", path, version,
               version == 1 ? " (the 2023 pre-release format)"
               : version != 0 && (version & 0xFFFF) == 0 ? " (a big-endian file?)" : "");
  const uint64_t tensor_count = cursor.u64("tensor count");
  const uint64_t kv_count = cursor.u64("metadata count");
  NIBBLE_CHECK(kv_count <= cursor.remaining() / kMinKvBytes, "{}: header claims {} metadata entries, but the {} "
               "bytes left hold at most {}; expected a count that fits the file", path, kv_count, cursor.remaining(),
               cursor.remaining() / kMinKvBytes);
  NIBBLE_CHECK(tensor_count <= cursor.remaining() / kMinTensorInfoBytes, "{}: header claims {} tensors, but the {} "
               "bytes left hold at most {} tensor infos; expected a count that fits the file", path, tensor_count,
               cursor.remaining(), cursor.remaining() / kMinTensorInfoBytes);

  read_metadata(cursor, *contents, kv_count);
  read_alignment(*contents);
  NIBBLE_CHECK(tensor_count <= cursor.remaining() / kMinTensorInfoBytes, "{}: header claims {} tensors, but the {} "
               "bytes left after the metadata hold at most {} tensor infos", path, tensor_count, cursor.remaining(),
               cursor.remaining() / kMinTensorInfoBytes);
  contents->tensors.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info = read_tensor_info(cursor, *contents, i);
    NIBBLE_CHECK(contents->tensor_index.emplace(info.name, contents->tensors.size()).second, "{}: tensor '{}' "
                 "appears twice; expected unique tensor names", path, info.name);
    contents->tensors.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t end_of_infos = cursor.position();
  const uint64_t padding = (contents->alignment - end_of_infos % contents->alignment) % contents->alignment;
  const uint64_t data_offset = end_of_infos + std::min<uint64_t>(padding, map.size() - end_of_infos);
  NIBBLE_CHECK(contents->tensors.empty() || end_of_infos + padding <= map.size(), "{}: file truncated: the data "
               "section would start at byte {}, past the end of the file ({} bytes)", path, end_of_infos + padding,
               map.size());
  contents->data_offset = data_offset;
  check_tensor_layout(*contents, map.size() - data_offset);

  GgufFile file;
  file.contents_ = std::move(contents);
  return file;
}

const std::string& GgufFile::path() const { return contents_->path; }
uint32_t GgufFile::version() const { return contents_->version; }
uint64_t GgufFile::alignment() const { return contents_->alignment; }
uint64_t GgufFile::data_offset() const { return contents_->data_offset; }
uint64_t GgufFile::file_size() const { return contents_->mapping->size(); }
const std::vector<std::string>& GgufFile::keys() const { return contents_->keys; }
bool GgufFile::has(const std::string& key) const { return contents_->values.count(key) != 0; }

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = contents_->values.find(key);
  return it == contents_->values.end() ? nullptr : &it->second;
}

std::string GgufFile::type_of(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return "absent";
  if (v->type != GgufValueType::array) return gguf_value_type_name(v->type);
  return fmt::format("array of {}", gguf_value_type_name(v->element_type));
}

namespace {

// The value of `key`, or an error naming what was expected.
const GgufValue& require(const GgufFile& file, const std::string& key, const char* expected) {
  const GgufValue* v = file.find(key);
  NIBBLE_CHECK(v != nullptr, "{}: metadata key '{}' is missing; expected {}", file.path(), key, expected);
  return *v;
}

[[noreturn]] void wrong_type(const GgufFile& file, const std::string& key, const char* expected) {
  fail("{}: metadata key '{}' is {}; expected {}", file.path(), key, file.type_of(key), expected);
}

}  // namespace

std::string GgufFile::string(const std::string& key) const {
  const GgufValue& v = require(*this, key, "a string");
  if (v.type != GgufValueType::string) wrong_type(*this, key, "a string");
  uint64_t consumed;
  return std::string(string_at(v.data, consumed));
}

int64_t GgufFile::integer(const std::string& key) const {
  const GgufValue& v = require(*this, key, "an integer");
  int64_t out;
  if (!is_integer_type(v.type)) wrong_type(*this, key, "an integer");
  NIBBLE_CHECK(integer_at(v.type, v.data, out), "{}: metadata key '{}' holds a u64 above 2^63-1; expected a smaller "
               "integer", path(), key);
  return out;
}

double GgufFile::number(const std::string& key) const {
  const GgufValue& v = require(*this, key, "a number");
  if (v.type == GgufValueType::f32 || v.type == GgufValueType::f64) return float_at(v.type, v.data);
  if (is_integer_type(v.type)) return static_cast<double>(integer(key));
  wrong_type(*this, key, "a number");
}

bool GgufFile::boolean(const std::string& key) const {
  const GgufValue& v = require(*this, key, "a bool");
  if (v.type != GgufValueType::boolean) wrong_type(*this, key, "a bool");
  return *v.data != 0;
}

std::vector<std::string> GgufFile::string_array(const std::string& key) const {
  const GgufValue& v = require(*this, key, "an array of strings");
  if (v.type != GgufValueType::array || v.element_type != GgufValueType::string)
    wrong_type(*this, key, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v.count);
  const unsigned char* p = v.data;
  for (uint64_t i = 0; i < v.count; ++i) {
    uint64_t consumed;
    out.emplace_back(string_at(p, consumed));
    p += consumed;
  }
  return out;
}

std::vector<int64_t> GgufFile::integer_array(const std::string& key) const {
  const GgufValue& v = require(*this, key, "an array of integers");
  if (v.type != GgufValueType::array || !is_integer_type(v.element_type))
    wrong_type(*this, key, "an array of integers");
  std::vector<int64_t> out(v.count);
  const uint64_t size = scalar_bytes(v.element_type);
  for (uint64_t i = 0; i < v.count; ++i)
    NIBBLE_CHECK(integer_at(v.element_type, v.data + i * size, out[i]), "{}: metadata key '{}' element {} is a u64 "
                 "above 2^63-1; expected a smaller integer", path(), key, i);
  return out;
}

std::vector<double> GgufFile::number_array(const std::string& key) const {
  const GgufValue& v = require(*this, key, "an array of numbers");
  if (v.type != GgufValueType::array) wrong_type(*this, key, "an array of numbers");
  if (is_integer_type(v.element_type)) {
    std::vector<int64_t> ints = integer_array(key);
    return std::vector<double>(ints.begin(), ints.end());
  }
  if (v.element_type != GgufValueType::f32 && v.element_type != GgufValueType::f64)
    wrong_type(*this, key, "an array of numbers");
  std::vector<double> out(v.count);
  const uint64_t size = scalar_bytes(v.element_type);
  for (uint64_t i = 0; i < v.count; ++i) out[i] = float_at(v.element_type, v.data + i * size);
  return out;
}

const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return contents_->tensors; }

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = contents_->tensor_index.find(name);
  return it == contents_->tensor_index.end() ? nullptr : &contents_->tensors[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  NIBBLE_CHECK(t != nullptr, "{}: tensor '{}' not found; the file has {} tensors", path(), name,
               contents_->tensors.size());
  return *t;
}

const unsigned char* GgufFile::tensor_data(const GgufTensorInfo& info) const {
  return contents_->mapping->data() + contents_->data_offset + info.offset;
}

Tensor GgufFile::dequantize(const GgufTensorInfo& info) const {
  Tensor out = Tensor::empty(info.shape(), DType::f32);
  ggml_dequantize(info.type.type, tensor_data(info), out.data_as<float>(), info.numel());
  return out;
}

}  // namespace nibble
