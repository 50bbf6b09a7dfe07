// Training checkpoints on disk: OUT/checkpoint-<step>/, each complete or absent, never half
// written (DESIGN.md principle 5; issue 5: a kill at any moment or a full disk loses no finished
// checkpoint).
//
// How: everything is written into OUT/.checkpoint-<step>.tmp-<pid>/; trainer_state.json, the
// marker of a complete checkpoint, is written last; every file and the folder are fsync'd; the
// folder is renamed to checkpoint-<step> (one atomic rename) and OUT is fsync'd so the rename
// survives a power cut. Only then are old checkpoints beyond save_total_limit removed, each
// first renamed to a .trash- name so a kill mid-delete cannot leave a checkpoint-<step> that looks
// complete but is not. latest_checkpoint() ignores and removes what a killed save left behind.
//
// File names inside a checkpoint are single path components: '/', "..", "." are rejected, so a
// name can never reach outside OUT.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nibble {

constexpr const char* kTrainerStateFile = "trainer_state.json";

std::string checkpoint_dir_name(int64_t step);  // "checkpoint-500"
// "checkpoint-500" -> 500; anything else (including "checkpoint-0500", "checkpoint--1") -> nullopt.
std::optional<int64_t> parse_checkpoint_dir_name(const std::string& name);

// A checkpoint being written. Destroyed before commit() (an exception), it removes its folder.
class CheckpointStaging {
 public:
  // Creates OUT if needed and an empty staging folder in it.
  CheckpointStaging(const std::string& out_dir, int64_t step);
  ~CheckpointStaging();
  CheckpointStaging(const CheckpointStaging&) = delete;
  CheckpointStaging& operator=(const CheckpointStaging&) = delete;

  int64_t step() const { return step_; }
  // The staging folder; writers that take a folder (write_peft_adapter) write straight into it.
  const std::string& dir() const { return staging_; }
  // dir()/name for a writer that takes a path (save_safetensors). Throws on a name that is not
  // one plain path component, or that is the marker (commit() writes it).
  std::string file(const std::string& name) const;
  // Writes dir()/name and fsyncs it.
  void write_file(const std::string& name, const std::string& bytes);

  // Writes the marker, fsyncs every file and folder inside, renames the folder to
  // OUT/checkpoint-<step> (exchanging it with an existing one of that step, which is then
  // removed), fsyncs OUT. Returns the checkpoint's path.
  std::string commit(const std::string& trainer_state_json);

 private:
  std::string out_;
  int64_t step_;
  std::string staging_;
  bool committed_ = false;
};

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;  // OUT/checkpoint-<step>
};

struct SavedCheckpoint {
  CheckpointInfo checkpoint;
  std::vector<std::string> not_removed;  // old checkpoints pruning could not delete (and why)
};

// The whole save: write_files(staging) writes everything but the marker, then commit(), then
// prune_checkpoints(save_total_limit). Any failure before the rename (a full disk, an error from
// write_files) removes the staging folder and throws nibble::Error saying what failed and that
// the previous checkpoint (named) is intact, or that there was none.
SavedCheckpoint save_checkpoint(const std::string& out_dir, int64_t step,
                                const std::function<void(CheckpointStaging&)>& write_files,
                                const std::string& trainer_state_json, int64_t save_total_limit);

// Complete checkpoints (a checkpoint-<step> folder holding trainer_state.json), oldest first.
std::vector<CheckpointInfo> list_checkpoints(const std::string& out_dir);
// The newest complete checkpoint, after removing what killed saves left behind: staging folders
// of processes that no longer run, and .trash- folders. nullopt when there is none (or no OUT).
std::optional<CheckpointInfo> latest_checkpoint(const std::string& out_dir);
// Keeps the newest `keep_last` checkpoints (0: all). Returns what could not be removed.
std::vector<std::string> prune_checkpoints(const std::string& out_dir, int64_t keep_last);

}  // namespace nibble
