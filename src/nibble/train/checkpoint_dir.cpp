#include "nibble/train/checkpoint_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"

namespace nibble {

namespace fs = std::filesystem;

namespace {

const char* const kPrefix = "checkpoint-";

std::string staging_name(int64_t step) {
  return fmt::format(".checkpoint-{}.tmp-{}", step, static_cast<long>(getpid()));
}
std::string trash_name(int64_t step) {
  return fmt::format(".checkpoint-{}.trash-{}", step, static_cast<long>(getpid()));
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) fail("cannot open {} to sync it: {}", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL); the files in it are synced regardless.
  if (rc != 0 && !(directory && error == EINVAL)) fail("cannot sync {}: {}", path, std::strerror(error));
}

void fsync_tree(const std::string& root) {
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const fs::file_status status = entry.symlink_status();
    if (fs::is_regular_file(status)) fsync_path(entry.path().string(), false);
    else if (fs::is_directory(status)) fsync_path(entry.path().string(), true);
  }
  fsync_path(root, true);
}

void remove_tree(const std::string& path) {
  std::error_code ignored;
  fs::remove_all(path, ignored);
}

bool process_alive(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

bool is_plain_directory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(path, ec));
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  NIBBLE_ASSERT(step >= 0);
  return fmt::format("{}{}", kPrefix, step);
}

std::optional<int64_t> parse_checkpoint_dir_name(const std::string& name) {
  static const std::regex pattern(R"(^checkpoint-(0|[1-9][0-9]{0,17})$)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  return std::stoll(match[1].str());
}

CheckpointStaging::CheckpointStaging(const std::string& out_dir, int64_t step) : out_(out_dir), step_(step) {
  NIBBLE_CHECK(step >= 0, "checkpoint step {}: expected >= 0", step);
  std::error_code ec;
  fs::create_directories(out_, ec);
  NIBBLE_CHECK(!ec && is_plain_directory(out_), "cannot create the output folder {}: {}", out_,
               ec ? ec.message() : "it exists and is not a folder");
  staging_ = (fs::path(out_) / staging_name(step)).string();
  remove_tree(staging_);  // left by an earlier failed save of this process
  NIBBLE_CHECK(fs::create_directory(staging_, ec) && !ec, "cannot create {}: {}", staging_,
               ec ? ec.message() : "it already exists");
}

CheckpointStaging::~CheckpointStaging() {
  if (!committed_) remove_tree(staging_);
}

std::string CheckpointStaging::file(const std::string& name) const {
  NIBBLE_CHECK(!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
                   name.find('\0') == std::string::npos,
               "checkpoint file name {}: expected a plain file name, without '/' or '..'",
               nlohmann::json(name).dump());  // quoted and escaped: the name may hold anything
  NIBBLE_CHECK(name != kTrainerStateFile, "{} is written by the checkpoint commit itself, last", kTrainerStateFile);
  return (fs::path(staging_) / name).string();
}

namespace {

void write_synced(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", path, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      ::close(fd);
      fail("cannot write {}: {}", path, std::strerror(error));
    }
    done += static_cast<size_t>(n);
  }
  const int rc = ::fsync(fd);
  const int error = errno;
  if (::close(fd) != 0 || rc != 0) fail("cannot write {}: {}", path, std::strerror(rc != 0 ? error : errno));
}

}  // namespace

void CheckpointStaging::write_file(const std::string& name, const std::string& bytes) {
  write_synced(file(name), bytes);
}

std::string CheckpointStaging::commit(const std::string& trainer_state_json) {
  NIBBLE_ASSERT(!committed_);
  write_synced((fs::path(staging_) / kTrainerStateFile).string(), trainer_state_json);
  fsync_tree(staging_);
  const std::string target = (fs::path(out_) / checkpoint_dir_name(step_)).string();
  if (!is_plain_directory(target)) {
    if (::rename(staging_.c_str(), target.c_str()) != 0)
      fail("cannot rename {} to {}: {}", staging_, target, std::strerror(errno));
    committed_ = true;
  } else {
    // The same step saved again (a resumed run passing an existing checkpoint): swap the two
    // folders in one step, so checkpoint-<step> is always one complete checkpoint.
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      committed_ = true;
      const std::string trash = (fs::path(out_) / trash_name(step_)).string();
      if (::rename(staging_.c_str(), trash.c_str()) == 0) remove_tree(trash);
    } else {
      // No RENAME_EXCHANGE on this file system: move the old one aside first. A kill in between
      // leaves no checkpoint-<step>, but every older checkpoint is still there.
      const std::string trash = (fs::path(out_) / trash_name(step_)).string();
      if (::rename(target.c_str(), trash.c_str()) != 0)
        fail("cannot move the old {} aside: {}", target, std::strerror(errno));
      if (::rename(staging_.c_str(), target.c_str()) != 0)
        fail("cannot rename {} to {}: {}", staging_, target, std::strerror(errno));
      committed_ = true;
      remove_tree(trash);
    }
  }
  fsync_path(out_, true);
  return target;
}

std::vector<CheckpointInfo> list_checkpoints(const std::string& out_dir) {
  std::vector<CheckpointInfo> found;
  std::error_code ec;
  if (!is_plain_directory(out_dir)) return found;
  for (const auto& entry : fs::directory_iterator(out_dir, ec)) {
    const std::optional<int64_t> step = parse_checkpoint_dir_name(entry.path().filename().string());
    if (!step || !is_plain_directory(entry.path())) continue;
    std::error_code marker_ec;
    if (!fs::is_regular_file(fs::symlink_status(entry.path() / kTrainerStateFile, marker_ec))) continue;
    found.push_back(CheckpointInfo{*step, entry.path().string()});
  }
  NIBBLE_CHECK(!ec, "cannot list the output folder {}: {}", out_dir, ec.message());
  std::sort(found.begin(), found.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return found;
}

std::optional<CheckpointInfo> latest_checkpoint(const std::string& out_dir) {
  if (!is_plain_directory(out_dir)) return std::nullopt;
  static const std::regex leftover(R"(^\.checkpoint-[0-9]+\.(tmp|trash)-([0-9]+)$)");
  std::vector<fs::path> stale;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(out_dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (!std::regex_match(name, match, leftover) || !is_plain_directory(entry.path())) continue;
    const long pid = std::stol(match[2].str());
    // A staging folder of a live process is a save in progress (another trainer on this
    // folder); trash is always garbage.
    if (match[1] == "trash" || (pid != static_cast<long>(getpid()) && !process_alive(pid)))
      stale.push_back(entry.path());
  }
  for (const fs::path& p : stale) remove_tree(p.string());
  std::vector<CheckpointInfo> all = list_checkpoints(out_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::vector<std::string> prune_checkpoints(const std::string& out_dir, int64_t keep_last) {
  std::vector<std::string> not_removed;
  if (keep_last <= 0) return not_removed;
  std::vector<CheckpointInfo> all = list_checkpoints(out_dir);
  const int64_t excess = static_cast<int64_t>(all.size()) - keep_last;
  for (int64_t i = 0; i < excess; ++i) {
    const CheckpointInfo& old = all[static_cast<size_t>(i)];
    // Out of the checkpoint-<step> name first, in one rename, then deleted at leisure.
    const std::string trash = (fs::path(out_dir) / trash_name(old.step)).string();
    if (::rename(old.path.c_str(), trash.c_str()) != 0) {
      not_removed.push_back(fmt::format("{} ({})", old.path, std::strerror(errno)));
      continue;
    }
    std::error_code ec;
    fs::remove_all(trash, ec);
    if (ec) not_removed.push_back(fmt::format("{} ({})", trash, ec.message()));
  }
  if (excess > 0) {
    try {
      fsync_path(out_dir, true);
    } catch (const Error& e) {
      not_removed.push_back(e.what());
    }
  }
  return not_removed;
}

SavedCheckpoint save_checkpoint(const std::string& out_dir, int64_t step,
                                const std::function<void(CheckpointStaging&)>& write_files,
                                const std::string& trainer_state_json, int64_t save_total_limit) {
  const std::vector<CheckpointInfo> before = list_checkpoints(out_dir);
  SavedCheckpoint saved;
  try {
    CheckpointStaging staging(out_dir, step);
    write_files(staging);
    saved.checkpoint = CheckpointInfo{step, staging.commit(trainer_state_json)};
  } catch (const std::exception& e) {
    const std::string previous =
        before.empty() ? std::string("there is no earlier checkpoint")
                       : fmt::format("the previous checkpoint {} is intact", before.back().path);
    fail("saving {} in {} failed: {}; {}", checkpoint_dir_name(step), out_dir, e.what(), previous);
  }
  saved.not_removed = prune_checkpoints(out_dir, save_total_limit);
  return saved;
}

}  // namespace nibble
