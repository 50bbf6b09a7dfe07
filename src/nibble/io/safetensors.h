// safetensors files (research/formats.md section 1): a memory-mapped reader that validates the
// whole header before any tensor byte is touched, an atomic writer laid out as the reference
// writer lays files out, and a model folder (one file or shards with an index).
//
// Layout: [u64 little-endian N][N bytes of UTF-8 JSON, space-padded][byte buffer]. Each header
// entry is "name": {"dtype", "shape", "data_offsets": [begin, end)} with offsets counted from
// the start of the byte buffer; "__metadata__" is an optional string -> string map.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nibble/core/tensor.h"

namespace nibble {

class SafetensorsFile {
 public:
  // Maps the file read-only and validates the header as the reference reader does: header length
  // within the file and <= 100 MB, a JSON object, every entry with a known dtype, a shape and
  // data_offsets, sizes matching shapes, tensors tiling the byte buffer exactly (no overlap, no
  // gap, nothing past the end, nothing left over), no duplicate names. Bad input throws
  // nibble::Error naming the file, the tensor and what was expected.
  static SafetensorsFile open(const std::string& path);
  // The same validation for a whole file already in memory (a fuzzer's input, a test's bytes);
  // `where` names it in errors. Tensors view `bytes`, which the returned object keeps alive.
  static SafetensorsFile from_bytes(std::string bytes, const std::string& where);

  const std::string& path() const;
  // Tensor names in the order their bytes appear in the file.
  const std::vector<std::string>& names() const;
  bool contains(const std::string& name) const;

  // A read-only CPU tensor viewing the mapping; it keeps the mapping alive after this object is
  // gone. Files from writers that do not pad may place a tensor at an offset that is not a
  // multiple of its element size; such a tensor is copied into aligned memory instead, so
  // data_as<T>() is always safe. Throws naming the file and the tensor if there is no such
  // tensor or its dtype (e.g. F8_E4M3) has no nibble DType.
  Tensor tensor(const std::string& name) const;
  // The header's view of a tensor, without touching its bytes.
  const Shape& shape(const std::string& name) const;
  const std::string& dtype_name(const std::string& name) const;  // "BF16", "F8_E4M3", ...

  const std::map<std::string, std::string>& metadata() const;

  struct Contents;  // the mapping and the parsed header, shared by copies

 private:
  // Validates the `size` bytes at `data`, which `owner` keeps alive, as the file `where`.
  static SafetensorsFile parse(const std::string& where, std::shared_ptr<const void> owner,
                               const unsigned char* data, size_t size);

  std::shared_ptr<const Contents> contents_;
};

// Writes `tensors` to `path` atomically (a temporary in the same folder, fsync'd, renamed): on
// any failure the temporary is removed and an existing file at `path` is left as it was.
// Tensors are laid out by descending element size, then by name, so every tensor's file offset
// is a multiple of its element size; the header is padded with spaces to a multiple of 8. CUDA
// tensors are copied to the host one at a time. Names must be unique and not "__metadata__".
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// A Hugging Face model folder: model.safetensors, or model.safetensors.index.json whose
// weight_map names the shard of every tensor. Every shard is opened (and so validated) up front,
// and every name in the index must be a tensor of the shard it points to.
class SafetensorsModel {
 public:
  static SafetensorsModel open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Shard by shard, each in file order.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  // Throws naming the folder and the tensor if absent.
  Tensor tensor(const std::string& name) const;
  const Shape& shape(const std::string& name) const;
  const std::string& dtype_name(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> shard_of_;
};

}  // namespace nibble
