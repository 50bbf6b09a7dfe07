#include "nibble/train/metrics_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "nibble/core/error.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/python_json.h"

namespace nibble {

using Json = nlohmann::ordered_json;

namespace {

Json without_nonfinite(const Json& value) {
  if (value.is_number_float() && !std::isfinite(value.get<double>())) return Json();
  if (!value.is_structured()) return value;
  Json copy = value;
  for (auto it = copy.begin(); it != copy.end(); ++it) *it = without_nonfinite(*it);
  return copy;
}

// Python's json.dumps writes NaN, Infinity and -Infinity, which are not JSON; outside strings
// they become null so a peer's log parses.
std::string python_nonfinite_as_null(const std::string& line) {
  std::string out;
  out.reserve(line.size());
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < line.size()) out += line[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* word : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::strlen(word);
      if (line.compare(i, n, word) == 0) {
        out += "null";
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

struct LogLine {
  std::string text;  // without the newline
  Json record;
  int64_t line = 0;
};

// The file's lines, parsed. A last line without a newline that does not parse was torn by a
// kill and is dropped.
std::vector<LogLine> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "cannot read the metrics log {}", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<LogLine> lines;
  size_t start = 0;
  int64_t number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const bool complete = end != std::string::npos;
    if (!complete) end = text.size();
    ++number;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json record = Json::parse(python_nonfinite_as_null(line), nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object()) {
      if (!complete) break;
      fail("{}:{}: not a JSON object: {}", path, number, line.substr(0, 80));
    }
    lines.push_back(LogLine{std::move(line), std::move(record), number});
  }
  return lines;
}

int open_for_append(const std::string& path, int extra_flags) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra_flags, 0644);
  if (fd < 0) fail("cannot open the metrics log {}: {}", path, std::strerror(errno));
  return fd;
}

}  // namespace

std::string metrics_line(const Json& record) {
  NIBBLE_CHECK(record.is_object(), "a metrics record must be a JSON object, got {}", record.dump());
  return python_json_dumps(without_nonfinite(record));
}

std::vector<Json> read_metrics_log(const std::string& path) {
  std::vector<Json> records;
  for (LogLine& line : read_lines(path)) records.push_back(std::move(line.record));
  return records;
}

MetricsLog MetricsLog::create(const std::string& path) { return MetricsLog(path, open_for_append(path, O_TRUNC)); }

MetricsLog MetricsLog::resume(const std::string& path, int64_t step) {
  if (::access(path.c_str(), F_OK) != 0) return create(path);
  std::string kept;
  for (const LogLine& line : read_lines(path)) {
    const Json& s = line.record.contains("step") ? line.record.at("step") : Json();
    if (s.is_number() && s.get<double>() > static_cast<double>(step)) break;
    kept += line.text;
    kept += '\n';
  }
  write_file_atomically(path, kept);
  return MetricsLog(path, open_for_append(path, 0));
}

MetricsLog::MetricsLog(MetricsLog&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_) {
  other.fd_ = -1;
}

MetricsLog& MetricsLog::operator=(MetricsLog&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const Json& record) {
  NIBBLE_ASSERT(fd_ >= 0);
  const std::string line = metrics_line(record) + "\n";
  // One write() per line: with O_APPEND a kill leaves whole lines, or one torn last line that
  // resume() drops. A failed write (a full disk) is cut back off, so no torn line is left in
  // the middle of the file for the lines that may follow once there is room again.
  struct stat before {};
  const bool have_size = ::fstat(fd_, &before) == 0;
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      if (have_size && done > 0) {
        // Best effort: if this fails too, resume() reports the torn line with its number.
        const int ignored = ::ftruncate(fd_, before.st_size);
        (void)ignored;
      }
      fail("cannot append to the metrics log {}: {}", path_, std::strerror(error));
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace nibble
