// Helpers shared by the io tests: a scratch folder per test and raw file construction.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "nibble/core/error.h"

namespace nibble::test {

// A fresh folder under the system temp dir, removed with everything in it at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "nibble_io_XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    NIBBLE_ASSERT(::mkdtemp(buffer.data()) != nullptr);
    path_ = buffer.data();
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ignored);
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    return names;
  }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  NIBBLE_ASSERT(out.good());
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A safetensors file from its parts: the 8-byte length (stated_length, or the header's real
// length when negative), the header text as given, then the data bytes.
inline std::string safetensors_bytes(const std::string& header, const std::string& data, int64_t stated_length = -1) {
  uint64_t length = stated_length < 0 ? header.size() : static_cast<uint64_t>(stated_length);
  std::string out(8, '\0');
  std::memcpy(out.data(), &length, 8);
  return out + header + data;
}

// `depth` nested JSON arrays, "[[[...]]]": hostile input that recursive code must not follow.
inline std::string nested_json_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// Runs `body` and checks it throws nibble::Error whose message contains every fragment.
inline void expect_error(const std::function<void()>& body, std::initializer_list<std::string> fragments) {
  try {
    body();
  } catch (const Error& e) {
    std::string message = e.what();
    for (const auto& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << "message: " << message << "\nmissing: " << f;
    return;
  }
  ADD_FAILURE() << "expected nibble::Error";
}

}  // namespace nibble::test
