// PEFT LoRA adapter folders (research/formats.md section 5): adapter_config.json and
// adapter_model.safetensors, as Hugging Face PEFT 0.21 writes and reads them.
//
// This file knows the format only: the config's fields, the tensor names, the bytes. Which model
// modules a config targets and the shapes their tensors must have is lora/'s business
// (lora/lora_peft.h), because only it knows the model.
//
// LoraConfig lives here, not in lora/, because io/ must parse it and lora/ depends on io/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/core/tensor.h"
#include "nibble/io/safetensors.h"

namespace nibble {

// target_modules / exclude_modules: a list of names (a module matches when its full name equals an
// entry or ends in "." + entry), a regex string (a module matches when the regex fully matches its
// full name), or "all-linear" (target_modules only: every linear of the blocks, not lm_head).
struct LoraModuleSelector {
  enum class Kind : uint8_t { names, regex, all_linear };
  Kind kind = Kind::names;
  std::vector<std::string> names;  // Kind::names
  std::string regex;               // Kind::regex
};

// init_lora_weights: true (A kaiming-uniform, B zero), "gaussian" (A ~ N(0, (1/r)^2), B zero),
// false (A and B both kaiming-uniform, so the adapter is not a no-op: for tests).
enum class LoraInit : uint8_t { kaiming, gaussian, none };

// LoraConfig as PEFT names its fields. Defaults: PEFT's, except target_modules (all seven block
// linears, QLoRA's choice, where PEFT defaults to q_proj and v_proj for Llama).
struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8.0;
  double lora_dropout = 0.0;
  LoraModuleSelector target_modules{LoraModuleSelector::Kind::all_linear, {}, {}};
  std::optional<LoraModuleSelector> exclude_modules;
  std::optional<std::vector<int64_t>> layers_to_transform;  // only with a list of target names, as in PEFT
  bool use_rslora = false;
  LoraInit init_lora_weights = LoraInit::kaiming;
  // Per-module overrides, keys are regexes matched against the end of the module name, first match
  // wins (PEFT's get_pattern_key); kept in file order.
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::optional<std::string> base_model_name_or_path;
  std::optional<std::string> revision;
  std::optional<std::string> task_type = std::string("CAUSAL_LM");
};

// The seven linear names of a Llama block, in the order PEFT's all-linear would find them.
const std::vector<std::string>& peft_block_linear_names();

// "base_model.model." + module + ".lora_A.weight" (or lora_B): the name PEFT saves, with the
// adapter name ("default") removed. `module` is the HF module path, "model.layers.0.self_attn.q_proj".
std::string peft_lora_tensor_name(const std::string& module, bool lora_b);

// adapter_config.json as PEFT 0.21 writes it: every field its LoraConfig serialises, with our
// values and PEFT's defaults for the features we do not use; all-linear is written as the seven
// names, as PEFT writes the expanded set.
nlohmann::ordered_json peft_config_to_json(const LoraConfig& config);
// Parses adapter_config.json. Accepts what PEFT accepts for the features nibble implements;
// anything that changes the math in ways nibble does not implement (use_dora, lora_bias,
// modules_to_save, fan_in_fan_out, bias other than "none", layer_replication, target_parameters,
// trainable tokens, an init that rewrites the base weights such as pissa/olora/loftq/eva/corda)
// is a nibble::Error naming the file and the field, saying it is not supported.
LoraConfig peft_config_from_json(const nlohmann::ordered_json& json, const std::string& file);

// A folder as read: the parsed config and the (validated, memory-mapped) tensor file.
struct PeftAdapterFiles {
  std::string dir;
  std::string config_path;   // dir/adapter_config.json
  std::string weights_path;  // dir/adapter_model.safetensors
  LoraConfig config;
  SafetensorsFile weights;
};

PeftAdapterFiles read_peft_adapter(const std::string& dir);

// Writes dir/adapter_model.safetensors (metadata {"format": "pt"}) and then dir/adapter_config.json
// (json.dumps(indent=2, sort_keys=True), no trailing newline, as PEFT writes it), creating dir if
// needed. Each file is written atomically, weights first, so a crash leaves either the old
// adapter or the new weights under the old config, never a torn file. `tensors` are named with
// peft_lora_tensor_name and are written in the dtype they have (PEFT writes F32).
void write_peft_adapter(const std::string& dir, const LoraConfig& config,
                        const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace nibble
