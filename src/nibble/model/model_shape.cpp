#include "nibble/model/model_shape.h"

#include "nibble/io/hf_config.h"

namespace nibble {

std::vector<LinearShape> block_linears(const ModelShape& s) {
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  return {
      {"q_proj", "self_attn.q_proj", q, s.hidden},
      {"k_proj", "self_attn.k_proj", kv, s.hidden},
      {"v_proj", "self_attn.v_proj", kv, s.hidden},
      {"o_proj", "self_attn.o_proj", s.hidden, q},
      {"gate_proj", "mlp.gate_proj", s.intermediate, s.hidden},
      {"up_proj", "mlp.up_proj", s.intermediate, s.hidden},
      {"down_proj", "mlp.down_proj", s.hidden, s.intermediate},
  };
}

namespace {

struct Preset {
  std::string_view name;
  std::string_view alias;
  int64_t hidden, intermediate, layers, heads, kv_heads, vocab;
  bool tied;
};

// Published configurations (config.json of each model family); head_dim = hidden / heads.
constexpr Preset kPresets[] = {
    {"llama-7b", "7b", 4096, 11008, 32, 32, 32, 32000, false},
    {"llama-13b", "13b", 5120, 13824, 40, 40, 40, 32000, false},
    {"llama-33b", "33b", 6656, 17920, 60, 52, 52, 32000, false},
    {"llama-65b", "65b", 8192, 22016, 80, 64, 64, 32000, false},
    {"llama2-7b", "", 4096, 11008, 32, 32, 32, 32000, false},
    {"llama2-13b", "", 5120, 13824, 40, 40, 40, 32000, false},
    {"llama2-70b", "", 8192, 28672, 80, 64, 8, 32000, false},
    {"llama3-8b", "", 4096, 14336, 32, 32, 8, 128256, false},
    {"llama3-70b", "", 8192, 28672, 80, 64, 8, 128256, false},
};

}  // namespace

std::optional<ModelShape> model_preset(std::string_view name) {
  for (const Preset& p : kPresets) {
    if (name != p.name && (p.alias.empty() || name != p.alias)) continue;
    ModelShape s;
    s.name = std::string(p.name);
    s.hidden = p.hidden;
    s.intermediate = p.intermediate;
    s.layers = p.layers;
    s.heads = p.heads;
    s.kv_heads = p.kv_heads;
    s.head_dim = p.hidden / p.heads;
    s.vocab = p.vocab;
    s.tied_embeddings = p.tied;
    return s;
  }
  return std::nullopt;
}

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

int64_t quantized_parameter_count(const ModelShape& s) {
  int64_t per_block = 0;
  for (const LinearShape& l : block_linears(s)) per_block += l.numel();
  return per_block * s.layers;
}

int64_t unquantized_parameter_count(const ModelShape& s) {
  int64_t embeddings = s.vocab * s.hidden * (s.tied_embeddings ? 1 : 2);
  int64_t norms = (2 * s.layers + 1) * s.hidden;
  int64_t biases = s.qkv_bias ? s.layers * (s.heads + 2 * s.kv_heads) * s.head_dim : 0;
  return embeddings + norms + biases;
}

ModelShape model_shape_from_config(const ModelConfig& c, const std::string& name) {
  ModelShape s;
  s.name = name;
  s.hidden = c.hidden_size;
  s.intermediate = c.intermediate_size;
  s.layers = c.num_hidden_layers;
  s.heads = c.num_attention_heads;
  s.kv_heads = c.num_key_value_heads;
  s.head_dim = c.head_dim;
  s.vocab = c.vocab_size;
  s.tied_embeddings = c.tie_word_embeddings;
  s.qkv_bias = c.qkv_bias;
  return s;
}

}  // namespace nibble
