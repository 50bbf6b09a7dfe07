// config.json of a Hugging Face Llama-family model (research/formats.md section 2.1) and its
// bitsandbytes quantization_config block (research/bnb-format.md section 3.4).
//
// Accepted: model_type llama, mistral, qwen2; hidden_act silu; RoPE default, linear, llama3 in
// either spelling (transformers 4: rope_theta + rope_scaling with "type" or "rope_type";
// transformers 5: rope_parameters). Anything else is a nibble::Error naming config.json, the key
// and what was expected, so an unsupported model fails at load and not with wrong numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/core/dtype.h"
#include "nibble/core/rope_config.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// bitsandbytes 4-bit settings as BitsAndBytesConfig names them.
struct BnbQuantizationConfig {
  QuantType quant_type = QuantType::nf4;         // bnb_4bit_quant_type
  bool double_quant = true;                      // bnb_4bit_use_double_quant
  DType compute_dtype = DType::bf16;             // bnb_4bit_compute_dtype
  DType quant_storage = DType::u8;               // bnb_4bit_quant_storage
  std::optional<std::vector<std::string>> skip_modules;  // llm_int8_skip_modules (null when absent)
};

struct ModelConfig {
  std::string model_type;  // "llama", "mistral", "qwen2"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // = num_attention_heads when absent (no GQA)
  int64_t head_dim = 0;             // = hidden_size / num_attention_heads when absent
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;     // qwen2 always; llama with attention_bias
  bool o_proj_bias = false;  // llama with attention_bias
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;    // eos_token_id as an int or a list
  std::optional<DType> dtype;            // "dtype" (transformers 5) or "torch_dtype" (4)
  std::optional<int64_t> sliding_window;  // effective window; empty when attention is full
  RopeConfig rope;
  std::optional<BnbQuantizationConfig> quantization;  // present for pre-quantized checkpoints
};

// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& dir);
// The same from already-parsed JSON; `file` names it in errors.
ModelConfig parse_model_config(const nlohmann::ordered_json& json, const std::string& file);

// DIR/config.json as JSON, key order kept, so it can be written back with additions.
nlohmann::ordered_json read_config_json(const std::string& dir);

// A quantization_config object (quant_method must be bitsandbytes, load_in_4bit true). Absent
// keys take BitsAndBytesConfig's class defaults (fp4, no double quant, float32 compute, uint8).
BnbQuantizationConfig parse_bnb_quantization_config(const nlohmann::ordered_json& block, const std::string& file);

// The quantization_config object transformers 5.17 writes for `config`, keys in its (sorted) order.
nlohmann::ordered_json bnb_quantization_config_json(const BnbQuantizationConfig& config);

// Writes DIR/config.json atomically: `original` with quantization_config set to `config`, as
// transformers writes config files (json.dumps(indent=2, sort_keys=True) + "\n").
void save_quantized_model_config(const std::string& dir, const nlohmann::ordered_json& original,
                                 const BnbQuantizationConfig& config);

}  // namespace nibble
