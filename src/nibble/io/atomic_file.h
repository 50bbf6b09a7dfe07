// Writing a file so that nothing is ever half-written (DESIGN.md principle 5): the bytes go to a
// temporary file in the destination's folder, are fsync'd, and the temporary is renamed over the
// destination. Until commit() succeeds the destination is untouched; a writer destroyed before
// commit() (an exception mid-way) removes its temporary.
#pragma once

#include <cstddef>
#include <string>

namespace nibble {

class AtomicFileWriter {
 public:
  // Creates the temporary next to `path`; throws nibble::Error naming `path` if the folder is
  // missing or not writable.
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  // fsync, close, rename over the destination, fsync the folder so the rename itself is durable.
  void commit();

  const std::string& path() const { return path_; }

 private:
  void discard() noexcept;

  std::string path_;
  std::string temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

// One-call form for small files (config.json).
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace nibble
