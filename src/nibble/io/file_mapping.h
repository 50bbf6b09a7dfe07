// A whole file mapped read-only and shared with the page cache: the storage behind the tensors
// of safetensors and GGUF files (a Tensor keeps its mapping alive through shared_ptr).
#pragma once

#include <cstddef>
#include <string>

namespace nibble {

class FileMapping {
 public:
  // Throws nibble::Error naming the file when it cannot be opened, stat'ed or mapped.
  explicit FileMapping(const std::string& path);
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  const unsigned char* data() const { return data_; }  // null for an empty file
  size_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace nibble
