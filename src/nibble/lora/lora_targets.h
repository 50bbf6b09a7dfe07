// Which linears of a Llama get an adapter, and with which rank and alpha: PEFT's matching rules
// (peft 0.21 check_target_module_exists and get_pattern_key) applied to the seven block linears.
// Module names are the HF paths PEFT sees, "model.layers.{i}.self_attn.q_proj".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nibble/io/peft_adapter.h"
#include "nibble/model/model_shape.h"

namespace nibble {

struct LoraTarget {
  std::string module;     // "model.layers.0.self_attn.q_proj"
  int64_t layer = 0;
  int64_t linear = 0;     // index into block_linears(): 0 q_proj .. 6 down_proj
  std::string name;       // "q_proj"
  int64_t out = 0;        // N
  int64_t in = 0;         // K
  int64_t r = 0;          // R, after rank_pattern
  double alpha = 0.0;     // after alpha_pattern
};

// Targets in layer order, then block_linears() order. Errors (naming `where`, the config file
// or "LoraConfig") when the config selects nothing, selects lm_head or the embeddings (not
// supported), or has a regex PCRE2 cannot compile.
std::vector<LoraTarget> lora_resolve_targets(const LoraConfig& config, const ModelShape& shape,
                                             const std::string& where = "LoraConfig");

// scaling = alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT LoraLayer.update_layer).
double lora_scaling(double alpha, int64_t r, bool use_rslora);

}  // namespace nibble
