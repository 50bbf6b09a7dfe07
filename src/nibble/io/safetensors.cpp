// The safetensors reader: mapping, header validation, tensor views.
#include "nibble/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/io/file_mapping.h"
#include "nibble/core/json_depth.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so is every host we run on");

namespace nibble {

namespace {

// The reference reader's cap on the header, so a corrupt length cannot make us parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;


// Element sizes in bits of every dtype the reference format knows; the sub-byte and fp8 types
// are validated like the rest even though nibble cannot hand them out as Tensors.
std::optional<uint64_t> safetensors_dtype_bits(std::string_view name) {
  if (auto dtype = dtype_from_safetensors_name(name)) return dtype_size(*dtype) * 8;
  static const std::unordered_map<std::string_view, uint64_t> others = {
      {"C64", 64},     {"F8_E5M2", 8},     {"F8_E4M3", 8},     {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
      {"F8_E5M2FNUZ", 8}, {"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  auto it = others.find(name);
  if (it == others.end()) return std::nullopt;
  return it->second;
}

constexpr std::string_view kKnownDtypes =
    "BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64, F8_E5M2, F8_E4M3, F8_E8M0, "
    "F8_E4M3FNUZ, F8_E5M2FNUZ, F4, F6_E2M3, F6_E3M2";

struct Entry {
  std::string name;
  std::string dtype_name;
  std::optional<DType> dtype;  // empty for types nibble cannot represent
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

uint64_t non_negative_integer(const nlohmann::json& value, const std::string& path, const std::string& name,
                              const char* field) {
  NIBBLE_CHECK(value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0),
               "{}: tensor '{}': {} holds {}; expected non-negative integers", path, name, field, value.dump());
  return value.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& value) {
  NIBBLE_CHECK(value.is_object(), "{}: tensor '{}': header entry is {}; expected an object with dtype, shape "
               "and data_offsets", path, name, value.type_name());
  for (const char* key : {"dtype", "shape", "data_offsets"})
    NIBBLE_CHECK(value.contains(key), "{}: tensor '{}': header entry has no \"{}\"; expected dtype, shape and "
                 "data_offsets", path, name, key);
  Entry entry;
  entry.name = name;

  const auto& dtype = value["dtype"];
  NIBBLE_CHECK(dtype.is_string(), "{}: tensor '{}': dtype is {}; expected a string", path, name, dtype.dump());
  entry.dtype_name = dtype.get<std::string>();
  std::optional<uint64_t> bits = safetensors_dtype_bits(entry.dtype_name);
  NIBBLE_CHECK(bits.has_value(), "{}: tensor '{}': unknown dtype \"{}\"; expected one of {}", path, name,
               entry.dtype_name, kKnownDtypes);
  entry.dtype = dtype_from_safetensors_name(entry.dtype_name);

  const auto& shape = value["shape"];
  NIBBLE_CHECK(shape.is_array(), "{}: tensor '{}': shape is {}; expected an array of integers", path, name,
               shape.dump());
  uint64_t numel = 1;
  for (const auto& d : shape) {
    uint64_t dim = non_negative_integer(d, path, name, "shape");
    NIBBLE_CHECK(dim <= static_cast<uint64_t>(INT64_MAX) && !__builtin_mul_overflow(numel, dim, &numel),
                 "{}: tensor '{}': shape {} has more elements than fit in 64 bits", path, name, shape.dump());
    entry.shape.push_back(static_cast<int64_t>(dim));
  }

  const auto& offsets = value["data_offsets"];
  NIBBLE_CHECK(offsets.is_array() && offsets.size() == 2, "{}: tensor '{}': data_offsets is {}; expected "
               "[begin, end]", path, name, offsets.dump());
  entry.begin = non_negative_integer(offsets[0], path, name, "data_offsets");
  entry.end = non_negative_integer(offsets[1], path, name, "data_offsets");
  NIBBLE_CHECK(entry.begin <= entry.end, "{}: tensor '{}': data_offsets [{}, {}] end before they begin", path,
               name, entry.begin, entry.end);

  uint64_t total_bits = 0;
  NIBBLE_CHECK(!__builtin_mul_overflow(numel, *bits, &total_bits), "{}: tensor '{}': {}{} is larger than 2^64 "
               "bits", path, name, entry.dtype_name, shape_to_string(entry.shape));
  NIBBLE_CHECK(total_bits % 8 == 0, "{}: tensor '{}': {}{} is {} bits, not a whole number of bytes", path, name,
               entry.dtype_name, shape_to_string(entry.shape), total_bits);
  NIBBLE_CHECK(total_bits / 8 == entry.end - entry.begin, "{}: tensor '{}': data_offsets [{}, {}] span {} "
               "bytes; expected {} bytes for {}{}", path, name, entry.begin, entry.end, entry.end - entry.begin,
               total_bits / 8, entry.dtype_name, shape_to_string(entry.shape));
  return entry;
}

// nlohmann keeps the last of repeated keys silently; the format forbids them, so watch the parse.
nlohmann::json parse_header_json(const std::string& path, std::string_view text) {
  std::vector<std::set<std::string>> keys_per_object;
  auto watch = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    // Real headers nest three levels; dump() in our messages recurses, so a deep one must stop here.
    if ((event == E::object_start || event == E::array_start) && depth >= kMaxJsonDepth)
      fail("{}: the header nests JSON deeper than {} levels; expected tensor entries", path, kMaxJsonDepth);
    if (event == E::object_start) {
      keys_per_object.emplace_back();
    } else if (event == E::object_end) {
      keys_per_object.pop_back();
    } else if (event == E::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      NIBBLE_CHECK(keys_per_object.back().insert(key).second, "{}: tensor '{}': the header names it twice; "
                   "expected unique {}", path, key, depth == 1 ? "tensor names" : "keys");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), watch);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the header is not valid UTF-8 JSON ({}); expected a JSON object", path, e.what());
  }
}

}  // namespace

struct SafetensorsFile::Contents {
  std::string path;
  std::shared_ptr<const void> owner;      // the mapping, or the bytes from_bytes was given
  const unsigned char* buffer = nullptr;  // start of the byte buffer, after the header
  std::vector<std::string> names;
  std::unordered_map<std::string, Entry> entries;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto mapping = std::make_shared<const FileMapping>(path);
  return parse(path, mapping, mapping->data(), mapping->size());
}

SafetensorsFile SafetensorsFile::from_bytes(std::string bytes, const std::string& where) {
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  return parse(where, owned, reinterpret_cast<const unsigned char*>(owned->data()), owned->size());
}

SafetensorsFile SafetensorsFile::parse(const std::string& path, std::shared_ptr<const void> owner,
                                       const unsigned char* data, size_t size) {
  auto contents = std::make_shared<Contents>();
  contents->path = path;
  contents->owner = std::move(owner);

  NIBBLE_CHECK(size >= 8, "{}: file is {} bytes; expected at least the 8-byte header length", path, size);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, data, 8);
  NIBBLE_CHECK(header_bytes <= kMaxHeaderBytes, "{}: header length {} exceeds the limit of {} bytes (not a "
               "safetensors file?)", path, header_bytes, kMaxHeaderBytes);
  NIBBLE_CHECK(header_bytes <= size - 8, "{}: header length {} runs past the end of the file ({} bytes); "
               "expected at most {}", path, header_bytes, size, size - 8);
  std::string_view text(reinterpret_cast<const char*>(data) + 8, header_bytes);
  NIBBLE_CHECK(!text.empty() && text[0] == '{', "{}: header does not start with '{{'; expected a JSON object",
               path);
  nlohmann::json header = parse_header_json(path, text);
  NIBBLE_CHECK(header.is_object(), "{}: header is {}; expected a JSON object", path, header.type_name());

  uint64_t buffer_bytes = size - 8 - header_bytes;
  contents->buffer = data + 8 + header_bytes;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      NIBBLE_CHECK(it->is_object(), "{}: __metadata__ is {}; expected an object of strings", path, it->type_name());
      for (auto m = it->begin(); m != it->end(); ++m) {
        NIBBLE_CHECK(m->is_string(), "{}: __metadata__ key '{}' holds {}; expected a string", path, m.key(),
                     m->dump());
        contents->metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), *it));
  }

  // The tensors must tile the byte buffer: sorted by offset, each starts where the last ended.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    NIBBLE_CHECK(e.end <= buffer_bytes, "{}: tensor '{}': data_offsets [{}, {}] reach past the end of the data "
                 "({} bytes after the header); expected end <= {} (file truncated?)", path, e.name, e.begin, e.end,
                 buffer_bytes, buffer_bytes);
    NIBBLE_CHECK(e.begin >= expected, "{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}'; expected it to "
                 "start at {}", path, e.name, e.begin, e.end, previous ? previous->name : "", expected);
    NIBBLE_CHECK(e.begin == expected, "{}: tensor '{}': data_offsets [{}, {}] leave a gap of {} bytes; expected "
                 "it to start at {}", path, e.name, e.begin, e.end, e.begin - expected, expected);
    expected = e.end;
    previous = &e;
  }
  NIBBLE_CHECK(expected == buffer_bytes, "{}: {} bytes after the last tensor{}; expected the data to end exactly "
               "at the end of the file", path, buffer_bytes - expected,
               previous ? fmt::format(" '{}'", previous->name) : std::string());

  for (Entry& e : entries) {
    contents->names.push_back(e.name);
    std::string name = e.name;
    contents->entries.emplace(std::move(name), std::move(e));
  }
  SafetensorsFile file;
  file.contents_ = std::move(contents);
  return file;
}

const std::string& SafetensorsFile::path() const { return contents_->path; }
const std::vector<std::string>& SafetensorsFile::names() const { return contents_->names; }
bool SafetensorsFile::contains(const std::string& name) const { return contents_->entries.count(name) != 0; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return contents_->metadata; }

namespace {

const Entry& find_entry(const SafetensorsFile::Contents& contents, const std::string& name) {
  auto it = contents.entries.find(name);
  NIBBLE_CHECK(it != contents.entries.end(), "{}: tensor '{}' not found; the file has {} tensors", contents.path,
               name, contents.entries.size());
  return it->second;
}

}  // namespace

const Shape& SafetensorsFile::shape(const std::string& name) const { return find_entry(*contents_, name).shape; }

const std::string& SafetensorsFile::dtype_name(const std::string& name) const {
  return find_entry(*contents_, name).dtype_name;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const Entry& e = find_entry(*contents_, name);
  NIBBLE_CHECK(e.dtype.has_value(), "{}: tensor '{}' has dtype {}, which nibble does not support", contents_->path,
               name, e.dtype_name);
  const unsigned char* bytes = contents_->buffer + e.begin;
  if (reinterpret_cast<uintptr_t>(bytes) % dtype_size(*e.dtype) != 0) {
    // An unpadded writer put it off its element alignment: hand out an aligned copy.
    Tensor copy = Tensor::empty(e.shape, *e.dtype);
    std::memcpy(copy.data(), bytes, copy.nbytes());
    return copy;
  }
  // The mapping is PROT_READ; the Tensor API has no const storage, so the cast is only for its
  // signature. Writing through a file tensor faults.
  return Tensor::from_external(const_cast<unsigned char*>(bytes), e.shape, *e.dtype, Device::cpu, contents_->owner);
}

}  // namespace nibble
