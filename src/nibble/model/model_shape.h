// The dimensions of a Llama-family decoder, and the presets `nibble memory --preset` knows.
// Letters used across model/: T tokens, C hidden, H heads, KVH kv heads, D head_dim,
// F intermediate, V vocab, L layers, R LoRA rank.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nibble {

struct ModelShape {
  std::string name;
  int64_t hidden = 0;        // C
  int64_t intermediate = 0;  // F
  int64_t layers = 0;        // L
  int64_t heads = 0;         // H
  int64_t kv_heads = 0;      // KVH
  int64_t head_dim = 0;      // D
  int64_t vocab = 0;         // V
  bool tied_embeddings = false;
  bool qkv_bias = false;     // Qwen2
};

// The seven linear layers of every block, as HF names them, with [out, in].
struct LinearShape {
  std::string_view name;  // "q_proj", ..., "down_proj"
  std::string_view module_path;  // "self_attn.q_proj", ..., "mlp.down_proj"
  int64_t out = 0;
  int64_t in = 0;
  int64_t numel() const { return out * in; }
};

std::vector<LinearShape> block_linears(const ModelShape& shape);

// Names accepted by --preset: llama-7b, llama-13b, llama-33b, llama-65b, llama2-7b,
// llama2-13b, llama2-70b, llama3-8b, llama3-70b, and the short forms 7b, 13b, 33b, 65b.
std::optional<ModelShape> model_preset(std::string_view name);
std::vector<std::string> model_preset_names();

// Parameter counts: the 4-bit linear weights, and everything else (embeddings, lm_head, norms).
int64_t quantized_parameter_count(const ModelShape& shape);
int64_t unquantized_parameter_count(const ModelShape& shape);

struct ModelConfig;
// The shape of a model from its config.json (io/hf_config.h); `name` names it in reports.
ModelShape model_shape_from_config(const ModelConfig& config, const std::string& name);

}  // namespace nibble
