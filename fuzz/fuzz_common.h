// What every fuzz target shares: bad input must end in nibble::Error, and nothing else.
// Any other exception (std::out_of_range, nlohmann::json::type_error, std::bad_alloc, ...) escapes
// LLVMFuzzerTestOneInput, which libFuzzer reports as a crash: that is a parser bug to fix.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nibble/core/error.h"

namespace nibble::fuzz {

inline std::string as_text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs `parse`; a nibble::Error is the expected answer to bad input.
template <typename Body>
void expect_only_nibble_errors(Body&& parse) {
  try {
    parse();
  } catch (const nibble::Error&) {
  }
}

// A folder for targets whose parser reads files by name, made once per process under
// $NIBBLE_FUZZ_TMP (scripts/fuzz.sh sets it), else /dev/shm (memory: writing an input costs no
// disk I/O), else /tmp; removed when the process exits normally. libFuzzer runs inputs one at a
// time in a process, so overwriting the same files each time is safe.
inline const std::string& scratch_dir() {
  struct Folder {
    std::string path;
    Folder() {
      const char* configured = std::getenv("NIBBLE_FUZZ_TMP");
      std::string base = configured && *configured ? configured : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
      std::filesystem::create_directories(base);
      std::string pattern = base + "/nibble_fuzz_XXXXXX";
      std::vector<char> buffer(pattern.begin(), pattern.end());
      buffer.push_back('\0');
      NIBBLE_ASSERT(::mkdtemp(buffer.data()) != nullptr);
      path = buffer.data();
    }
    ~Folder() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Folder folder;
  return folder.path;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  NIBBLE_ASSERT(out.good());
}

}  // namespace nibble::fuzz
