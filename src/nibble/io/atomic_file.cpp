#include "nibble/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "nibble/core/error.h"

namespace nibble {

namespace {

std::string parent_folder(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Unique within the process (counter) and across processes (pid), so concurrent writers of the
// same destination never share a temporary.
std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return fmt::format("{}.tmp.{}.{}", path, static_cast<long>(::getpid()), counter.fetch_add(1));
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::string& path) : path_(path), temporary_(temporary_name(path)) {
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0)
    fail("cannot write {}: creating the temporary file {} failed: {}", path_, temporary_, std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) discard();
}

void AtomicFileWriter::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  NIBBLE_ASSERT(fd_ >= 0 && !committed_);
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    // Linux writes at most ~2 GiB per call; loop over partial writes and EINTR.
    size_t chunk = bytes < (size_t{1} << 30) ? bytes : (size_t{1} << 30);
    ssize_t written = ::write(fd_, p, chunk);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("cannot write {}: writing {} failed: {}", path_, temporary_, std::strerror(errno));
    }
    p += written;
    bytes -= static_cast<size_t>(written);
  }
}

void AtomicFileWriter::commit() {
  NIBBLE_ASSERT(fd_ >= 0 && !committed_);
  if (::fsync(fd_) != 0) fail("cannot write {}: fsync failed: {}", path_, std::strerror(errno));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot write {}: closing the temporary failed: {}", path_, std::strerror(errno));
  if (::rename(temporary_.c_str(), path_.c_str()) != 0)
    fail("cannot write {}: renaming {} failed: {}", path_, temporary_, std::strerror(errno));
  committed_ = true;
  // Best effort: some file systems cannot fsync a directory; the file itself is already durable.
  int dir = ::open(parent_folder(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  AtomicFileWriter writer(path);
  writer.write(contents.data(), contents.size());
  writer.commit();
}

}  // namespace nibble
