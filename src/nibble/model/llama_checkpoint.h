// A Llama-family checkpoint read from a Hugging Face folder and checked against its config:
// every tensor present, with the dtype and shape the config implies, before anything is placed
// on a device. The tensors stay on the CPU as the files hold them (mmap views, the file's dtype);
// LlamaModel (llama.h) casts, quantizes and uploads them.
//
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nibble/core/rope_config.h"
#include "nibble/core/tensor.h"
#include "nibble/model/model_shape.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// Dimension letters as in model_shape.h: C hidden, F intermediate, L layers, H heads, KVH kv
// heads, D head_dim, V vocab.
struct LlamaHyper {
  std::string model_type;  // "llama", "mistral", "qwen2"
  int64_t hidden = 0;        // C
  int64_t intermediate = 0;  // F
  int64_t layers = 0;        // L
  int64_t heads = 0;         // H
  int64_t kv_heads = 0;      // KVH
  int64_t head_dim = 0;      // D
  int64_t vocab = 0;         // V
  int64_t max_positions = 0;  // max_position_embeddings
  double rms_norm_eps = 1e-6;
  bool tied_embeddings = false;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  std::optional<int64_t> bos_id;
  std::vector<int64_t> eos_ids;
  std::optional<int64_t> sliding_window;  // attention is full below this many positions

  RopeConfig rope;  // as config.json gives it
};

// The dimensions alone, as `nibble memory` and lora/ take them; `name` names the model in reports.
ModelShape model_shape_of(const LlamaHyper& hyper, const std::string& name);

// One linear layer as stored: a 16-bit/fp32 weight or a bitsandbytes 4-bit one, and its bias.
struct LlamaCheckpointLinear {
  std::string name;  // "model.layers.0.self_attn.q_proj", for errors
  int64_t out = 0;   // N
  int64_t in = 0;    // K
  Tensor weight;     // [N, K] F32/F16/BF16 when not 4-bit
  std::optional<QuantizedWeight> weight_4bit;  // [N, K] when the folder is bitsandbytes 4-bit
  Tensor bias;       // [N], or undefined
};

struct LlamaCheckpointBlock {
  Tensor input_norm;  // [C]
  LlamaCheckpointLinear q, k, v, o;
  Tensor post_norm;   // [C]
  LlamaCheckpointLinear gate, up, down;
};

struct LlamaCheckpoint {
  std::string dir;
  LlamaHyper hyper;
  std::optional<DType> config_dtype;  // config.json's dtype / torch_dtype
  DType storage_dtype = DType::f32;   // of embed_tokens: what the 16-bit tensors are stored in
  bool prequantized = false;          // a bitsandbytes 4-bit folder
  Tensor embed;                       // [V, C]
  std::vector<LlamaCheckpointBlock> blocks;
  Tensor norm;                        // [C]
  LlamaCheckpointLinear lm_head;      // [V, C]; when tied, its weight is embed
};

// Reads DIR (config.json + safetensors) and checks every tensor: presence, dtype (F32/F16/BF16,
// or the bitsandbytes 4-bit pieces where config.json has a quantization_config), shape. Errors
// name the folder, the tensor, the file and the expected shape.
LlamaCheckpoint read_llama_checkpoint(const std::string& dir);

}  // namespace nibble
