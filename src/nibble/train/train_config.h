// Every option of `nibble train`, named as transformers / PEFT / bitsandbytes users know them
// (TrainingArguments, LoraConfig, BitsAndBytesConfig), so a config written for one reads as the
// other. One table (visit_train_options) lists the fields once; the JSON reader and writer, the
// command-line flags (train_options.h) and the resume fingerprint (train_state.h) all walk it, so
// a new option cannot be forgotten by one of them.
//
// Defaults are transformers' and PEFT's, except where nibble's job (QLoRA) has a better-known
// choice: learning_rate 2e-4 (QLoRA; transformers says 5e-5), optim paged_adamw_32bit (QLoRA;
// transformers says adamw_torch), logging_steps 10 (transformers 500, too rare for short runs),
// save_total_limit 2 (transformers keeps all), gradient_checkpointing on, target_modules
// all-linear. max_grad_norm is transformers' 1.0, not the QLoRA scripts' 0.3: a user who changes
// nothing gets what the Trainer would do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "nibble/core/dtype.h"
#include "nibble/io/peft_adapter.h"
#include "nibble/optim/adamw_math.h"
#include "nibble/quant/quant_state.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"

namespace nibble {

struct TrainConfig {
  // Files. Relative paths are relative to the working directory, in the file as on the command
  // line (as transformers' output_dir is).
  std::string model;      // HF model folder (16-bit, or 4-bit in bitsandbytes' layout)
  std::string data;       // training JSONL
  std::string out;        // adapter folder; checkpoints go in it as checkpoint-<step>/
  std::string eval_data;  // "" = none
  double eval_split = 0.0;  // held-out ratio of `data` in [0, 1); 0 = none; not with eval_data
  int64_t eval_steps = 0;   // 0 = logging_steps, as transformers

  // TrainingArguments.
  double learning_rate = 2e-4;
  double num_train_epochs = 1.0;   // may be fractional, as in transformers
  int64_t max_steps = -1;          // > 0 overrides num_train_epochs
  int64_t per_device_train_batch_size = 1;
  int64_t gradient_accumulation_steps = 1;
  double max_grad_norm = 1.0;      // 0 = no clipping
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;        // > 0 overrides warmup_ratio
  std::string lr_scheduler_type = "linear";
  std::string optim = "paged_adamw_32bit";
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  int64_t seed = 42;
  int64_t save_steps = 500;
  int64_t save_total_limit = 2;    // 0 = keep every checkpoint
  int64_t logging_steps = 10;
  bool gradient_checkpointing = true;

  // LoraConfig.
  int64_t r = 8;
  double lora_alpha = 8.0;
  double lora_dropout = 0.0;
  LoraModuleSelector target_modules{LoraModuleSelector::Kind::all_linear, {}, {}};
  bool use_rslora = false;

  // Data (TRL's SFTConfig names).
  int64_t max_seq_length = 2048;
  bool packing = true;
  bool train_on_inputs = false;
  std::string dataset_format = "auto";
  bool skip_bad_lines = false;
  bool shuffle = true;  // the order of examples each epoch, from the seed (false: file order)

  // Start from an existing adapter (ours or PEFT's) instead of a fresh one: its weights, and its
  // adapter_config.json's rank, alpha, dropout and targets, which then replace the LoRA fields.
  std::string init_adapter;

  // BitsAndBytesConfig (used when the model folder holds 16-bit weights to quantize on load).
  bool load_in_4bit = true;  // false: LoRA on the 16-bit base as it is (no quantization)
  std::string bnb_4bit_quant_type = "nf4";
  bool bnb_4bit_use_double_quant = true;
  std::string bnb_4bit_compute_dtype = "bfloat16";

  // The run.
  std::string device;                  // "" = cuda when a GPU is present, else cpu
  std::string on_nonfinite = "stop";   // NaN/Inf loss or gradient: "stop" or "skip" the step
  bool resume = false;                 // continue from the newest checkpoint in `out`
  std::string max_gpu_memory;          // "" = the whole card; else "24GiB", "20GB", "512MiB", bytes
};

// What each field is, for help texts and the resume fingerprint.
struct TrainOptionInfo {
  const char* name;   // the JSON key; the flag is "--" + name with '_' -> '-'
  const char* help;
  bool shapes_run;    // changes the numbers a run produces: a resume must use the same value
};

// Calls visit(TrainOptionInfo, &TrainConfig::field) for every field, in the order above. Field
// types: std::string, int64_t, double, bool, LoraModuleSelector.
template <typename Visitor>
void visit_train_options(Visitor&& visit) {
  using C = TrainConfig;
  visit(TrainOptionInfo{"model", "Hugging Face model folder", false}, &C::model);
  visit(TrainOptionInfo{"data", "training data, JSONL (text, alpaca or chat lines)", false}, &C::data);
  visit(TrainOptionInfo{"out", "output folder: the adapter, checkpoints, metrics.jsonl, loss.png", false}, &C::out);
  visit(TrainOptionInfo{"eval_data", "held-out JSONL evaluated every eval_steps", false}, &C::eval_data);
  visit(TrainOptionInfo{"eval_split", "ratio of the training data held out for evaluation, in [0, 1)", true},
        &C::eval_split);
  visit(TrainOptionInfo{"eval_steps", "evaluate every N optimizer steps (0: every logging_steps)", false},
        &C::eval_steps);
  visit(TrainOptionInfo{"learning_rate", "peak learning rate", true}, &C::learning_rate);
  visit(TrainOptionInfo{"num_train_epochs", "passes over the data (may be fractional)", true}, &C::num_train_epochs);
  visit(TrainOptionInfo{"max_steps", "optimizer steps in total; > 0 overrides num_train_epochs", true}, &C::max_steps);
  visit(TrainOptionInfo{"per_device_train_batch_size", "rows per micro-batch", true},
        &C::per_device_train_batch_size);
  visit(TrainOptionInfo{"gradient_accumulation_steps", "micro-batches per optimizer step", true},
        &C::gradient_accumulation_steps);
  visit(TrainOptionInfo{"max_grad_norm", "clip the gradients' global L2 norm to this (0: no clipping)", true},
        &C::max_grad_norm);
  visit(TrainOptionInfo{"warmup_ratio", "warmup as a ratio of the total steps, in [0, 1)", true}, &C::warmup_ratio);
  visit(TrainOptionInfo{"warmup_steps", "warmup steps; > 0 overrides warmup_ratio", true}, &C::warmup_steps);
  visit(TrainOptionInfo{"lr_scheduler_type", "constant | constant_with_warmup | linear | cosine", true},
        &C::lr_scheduler_type);
  visit(TrainOptionInfo{"optim", "paged_adamw_32bit | paged_adamw_8bit | adamw", true}, &C::optim);
  visit(TrainOptionInfo{"weight_decay", "AdamW weight decay", true}, &C::weight_decay);
  visit(TrainOptionInfo{"adam_beta1", "AdamW beta1", true}, &C::adam_beta1);
  visit(TrainOptionInfo{"adam_beta2", "AdamW beta2", true}, &C::adam_beta2);
  visit(TrainOptionInfo{"adam_epsilon", "AdamW epsilon", true}, &C::adam_epsilon);
  visit(TrainOptionInfo{"seed", "seed of the LoRA init, dropout, shuffling and the eval split", true}, &C::seed);
  visit(TrainOptionInfo{"save_steps", "write a checkpoint every N optimizer steps", false}, &C::save_steps);
  visit(TrainOptionInfo{"save_total_limit", "checkpoints kept, newest first (0: all)", false}, &C::save_total_limit);
  visit(TrainOptionInfo{"logging_steps", "log (metrics.jsonl, progress line) every N optimizer steps", false},
        &C::logging_steps);
  visit(TrainOptionInfo{"gradient_checkpointing", "recompute block activations in backward to save memory", false},
        &C::gradient_checkpointing);
  visit(TrainOptionInfo{"r", "LoRA rank", true}, &C::r);
  visit(TrainOptionInfo{"lora_alpha", "LoRA alpha (scaling = alpha / r)", true}, &C::lora_alpha);
  visit(TrainOptionInfo{"lora_dropout", "dropout on the LoRA input, in [0, 1)", true}, &C::lora_dropout);
  visit(TrainOptionInfo{"target_modules", "all-linear, or module names (q_proj,v_proj,...); a regex in the file",
                        true},
        &C::target_modules);
  visit(TrainOptionInfo{"use_rslora", "rank-stabilised scaling alpha / sqrt(r)", true}, &C::use_rslora);
  visit(TrainOptionInfo{"max_seq_length", "tokens per row; longer examples are truncated", true},
        &C::max_seq_length);
  visit(TrainOptionInfo{"packing", "pack several examples per row (they never attend to each other)", true},
        &C::packing);
  visit(TrainOptionInfo{"train_on_inputs", "loss on prompts and user turns too, not only responses", true},
        &C::train_on_inputs);
  visit(TrainOptionInfo{"dataset_format", "auto | text | alpaca | chat", true}, &C::dataset_format);
  visit(TrainOptionInfo{"skip_bad_lines", "count and skip bad JSONL lines instead of stopping", true},
        &C::skip_bad_lines);
  visit(TrainOptionInfo{"shuffle", "shuffle the examples every epoch (from the seed); off: file order", true},
        &C::shuffle);
  visit(TrainOptionInfo{"init_adapter", "start from this adapter folder (PEFT or nibble) instead of a fresh one",
                        true},
        &C::init_adapter);
  visit(TrainOptionInfo{"load_in_4bit", "quantize a 16-bit model on load (off: LoRA on the 16-bit base)", true},
        &C::load_in_4bit);
  visit(TrainOptionInfo{"bnb_4bit_quant_type", "nf4 | fp4, when quantizing a 16-bit model on load", true},
        &C::bnb_4bit_quant_type);
  visit(TrainOptionInfo{"bnb_4bit_use_double_quant", "quantize the absmax constants again", true},
        &C::bnb_4bit_use_double_quant);
  visit(TrainOptionInfo{"bnb_4bit_compute_dtype", "bfloat16 | float16 | float32", true}, &C::bnb_4bit_compute_dtype);
  visit(TrainOptionInfo{"device", "cpu | cuda (default: cuda when a GPU is present)", false}, &C::device);
  visit(TrainOptionInfo{"on_nonfinite", "NaN/Inf in loss or gradients: stop | skip (the step)", false},
        &C::on_nonfinite);
  visit(TrainOptionInfo{"resume", "continue from the newest checkpoint in out", false}, &C::resume);
  visit(TrainOptionInfo{"max_gpu_memory", "GPU memory nibble may use, e.g. 24GiB (default: the whole card)", false},
        &C::max_gpu_memory);
}

// The command-line flag of a field: "--" + name with '_' -> '-' (--learning-rate).
std::string train_flag_name(const std::string& field);

// Reads a JSON config file (comments allowed). Every key must be a TrainConfig field: an unknown
// key is an error naming the file and the key and suggesting the closest known name; a wrong type
// names the key and the type expected. Keys not in the file keep their defaults. null is accepted
// for text fields (as unset). Not validated: call validate_train_config after merging the flags.
TrainConfig load_train_config(const std::string& path);
// The same from JSON in memory; `where` names it in messages.
TrainConfig train_config_from_json(const nlohmann::ordered_json& json, const std::string& where);

// Every field in table order; empty text fields are null.
nlohmann::ordered_json train_config_to_json(const TrainConfig& config);
// path <- json.dumps(indent=2) + "\n", atomically (training_args.json, checkpoints).
void save_train_config(const std::string& path, const TrainConfig& config);

// Ranges and names (lr > 0, r > 0, 0 <= dropout < 1, a known optim, ...). Throws nibble::Error
// naming the field, its flag, the value and what is accepted.
void validate_train_config(const TrainConfig& config);

// "24GiB", "24 GiB", "20GB", "512MiB", "1.5GiB", "123456" (bytes) -> bytes (accelerate's
// max_memory spelling: binary units with i, decimal without). Throws naming `what`.
int64_t parse_memory_size(const std::string& text, const std::string& what);

// The resolved pieces the train loop hands to the other modules.
LoraConfig train_lora_config(const TrainConfig& config);
AdamwHyper train_adamw_hyper(const TrainConfig& config);
DatasetOptions train_dataset_options(const TrainConfig& config);
QuantConfig train_quant_config(const TrainConfig& config);
DType train_compute_dtype(const TrainConfig& config);
std::optional<int64_t> train_max_gpu_memory(const TrainConfig& config);  // nullopt: no limit
// Rows are shuffled from the seed. `epochs` is num_train_epochs rounded up, or with max_steps
// enough epochs to reach it; the loop stops at the total step count, which may end an epoch
// early, as transformers does.
BatchOptions train_batch_options(const TrainConfig& config);
// transformers: max_steps if > 0, else ceil(num_train_epochs * updates_per_epoch), where
// updates_per_epoch = ceil(micro-batches per epoch / gradient_accumulation_steps).
int64_t train_total_steps(const TrainConfig& config, int64_t updates_per_epoch);
// TrainingArguments.get_warmup_steps: warmup_steps if > 0, else ceil(total * warmup_ratio).
int64_t train_warmup_steps(const TrainConfig& config, int64_t total_steps);
int64_t train_eval_steps(const TrainConfig& config);

}  // namespace nibble
