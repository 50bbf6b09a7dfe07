// trainer_state.json: where a run stands when a checkpoint is written, and what it must not
// change to be resumed (the marker file of a complete checkpoint, checkpoint_dir.h).
//
// The fingerprint holds the TrainConfig fields that change the numbers (TrainOptionInfo::
// shapes_run) and digests of the model and data files. A resume whose fingerprint differs stops
// with an error naming the field and both values, because continuing would silently produce a run
// that is neither the old one nor a new one. The model folder is fingerprinted by content
// (config.json and each safetensors header), not by path, so moving or copying it is fine;
// data files by size and FNV-1a 64 of their bytes (hashing a JSONL is fast next to tokenizing it).
// Options that do not change the numbers (save_steps, logging, device, ...) may change on resume.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/text/dataset_batch.h"
#include "nibble/train/train_config.h"

namespace nibble {

// Ordered (name, value) pairs, compared by their JSON text.
struct RunFingerprint {
  std::vector<std::pair<std::string, nlohmann::ordered_json>> fields;
};

struct TrainState {
  int64_t global_step = 0;            // optimizer steps done
  double epoch = 0.0;                 // fractional, as transformers logs it
  DataPosition data_position;         // the next micro-batch (BatchIterator::state())
  int64_t seed = 42;
  uint64_t rng_offset = 0;            // Philox draws used so far (dropout); the RNG's only state
  int64_t tokens_seen = 0;            // target tokens trained on
  // The scheduler is a pure function of these and global_step (lr_schedule.h).
  std::string lr_scheduler_type = "linear";
  double learning_rate = 0.0;         // base (peak) rate
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  std::optional<double> last_loss;    // the last logged training loss
  std::optional<double> last_eval_loss;
  RunFingerprint fingerprint;
};

// The fingerprint of a run about to start or resume. `eval_data` may be empty.
RunFingerprint make_run_fingerprint(const TrainConfig& config);
// Throws nibble::Error naming `state_file`, the first field whose value differs (or that only
// one side has), the checkpoint's value and the current one.
void check_resume_fingerprint(const RunFingerprint& saved, const RunFingerprint& current,
                              const std::string& state_file);

// "<size>:<fnv1a64 hex>" of a file's bytes; throws naming the file when it cannot be read.
std::string file_digest(const std::string& path);
// FNV-1a 64 over config.json and the header of every *.safetensors file (names sorted), plus
// their sizes: what identifies the weights without reading gigabytes.
std::string model_digest(const std::string& model_dir);

nlohmann::ordered_json train_state_to_json(const TrainState& state);
// Errors name `file` and the key that is missing or of the wrong type.
TrainState train_state_from_json(const nlohmann::ordered_json& json, const std::string& file);
// train_state_to_json as json.dumps(indent=2) + "\n": the bytes of trainer_state.json.
std::string train_state_text(const TrainState& state);
TrainState read_train_state(const std::string& file);

}  // namespace nibble
