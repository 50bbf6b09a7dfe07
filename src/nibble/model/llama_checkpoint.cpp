#include "nibble/model/llama_checkpoint.h"

#include <set>

#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/io/bnb_checkpoint.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/safetensors.h"

namespace nibble {

namespace {

// The one architecture class transformers instantiates for each accepted model_type.
std::string causal_lm_class(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  return "Qwen2ForCausalLM";
}

LlamaHyper hyper_from_config(const ModelConfig& c) {
  LlamaHyper h;
  h.model_type = c.model_type;
  h.hidden = c.hidden_size;
  h.intermediate = c.intermediate_size;
  h.layers = c.num_hidden_layers;
  h.heads = c.num_attention_heads;
  h.kv_heads = c.num_key_value_heads;
  h.head_dim = c.head_dim;
  h.vocab = c.vocab_size;
  h.max_positions = c.max_position_embeddings;
  h.rms_norm_eps = c.rms_norm_eps;
  h.tied_embeddings = c.tie_word_embeddings;
  h.qkv_bias = c.qkv_bias;
  h.o_bias = c.o_proj_bias;
  h.mlp_bias = c.mlp_bias;
  h.bos_id = c.bos_token_id;
  h.eos_ids = c.eos_token_ids;
  h.sliding_window = c.sliding_window;
  h.rope = c.rope;
  return h;
}

// Reads tensors by name, checking each against what the config implies, and remembers which
// names were used so that anything left over can be reported.
class TensorReader {
 public:
  TensorReader(const SafetensorsModel& model, bool quantized) : model_(model), quantized_(quantized) {}

  Tensor plain(const std::string& name, const Shape& expected) {
    need(name, expected);
    const std::string& file = model_.file_of(name).path();
    Tensor t = model_.tensor(name);
    NIBBLE_CHECK(dtype_is_float(t.dtype()) && t.dtype() != DType::f64,
                 "{}: tensor {} in {} is {}; expected F32, F16 or BF16 of shape {}", model_.dir(), name, file,
                 t.describe(), shape_to_string(expected));
    NIBBLE_CHECK(t.shape() == expected, "{}: tensor {} in {} has shape {}; expected {} from config.json",
                 model_.dir(), name, file, shape_to_string(t.shape()), shape_to_string(expected));
    used_.insert(name);
    return t;
  }

  LlamaCheckpointLinear linear(const std::string& module, int64_t out, int64_t in, bool has_bias) {
    LlamaCheckpointLinear l;
    l.name = module;
    l.out = out;
    l.in = in;
    const std::string weight = module + ".weight";
    if (is_bnb_quantized_weight(model_, weight)) {
      NIBBLE_CHECK(quantized_, "{}: tensor {} in {} is bitsandbytes 4-bit, but config.json has no "
                   "quantization_config; expected a plain F32/F16/BF16 weight of shape [{}, {}]",
                   model_.dir(), weight, model_.file_of(weight).path(), out, in);
      QuantizedWeight w = load_bnb_weight(model_, weight);
      NIBBLE_CHECK(w.shape == Shape({out, in}), "{}: 4-bit tensor {} in {} has shape {}; expected [{}, {}] from "
                   "config.json", model_.dir(), weight, model_.file_of(weight).path(), shape_to_string(w.shape),
                   out, in);
      for (const std::string& name : model_.names())
        if (name.compare(0, weight.size(), weight) == 0 && is_bnb_auxiliary_tensor(name)) used_.insert(name);
      used_.insert(weight);
      l.weight_4bit = std::move(w);
    } else {
      l.weight = plain(weight, {out, in});
    }
    if (has_bias) l.bias = plain(module + ".bias", {out});
    return l;
  }

  // Tensors the config does not explain: a sign of another architecture, or of a config that
  // does not belong to these weights.
  void check_nothing_left(const LlamaHyper& h) {
    for (const std::string& name : model_.names()) {
      if (used_.count(name)) continue;
      if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // old conversions stored it
      if (name == "lm_head.weight" && h.tied_embeddings) continue;  // transformers ignores it when tied
      fail("{}: unexpected tensor {} in {}: config.json ({} with {} layers{}) has no such weight", model_.dir(), name,
           model_.file_of(name).path(), h.model_type, h.layers,
           h.qkv_bias ? ", q/k/v biases" : ", no biases");
    }
  }

 private:
  void need(const std::string& name, const Shape& expected) {
    NIBBLE_CHECK(model_.contains(name), "{}: missing tensor {}; expected shape {} from config.json", model_.dir(),
                 name, shape_to_string(expected));
  }

  const SafetensorsModel& model_;
  bool quantized_;
  std::set<std::string> used_;
};

}  // namespace

LlamaCheckpoint read_llama_checkpoint(const std::string& dir) {
  ModelConfig config = load_model_config(dir);
  const std::string config_file = dir + "/config.json";
  nlohmann::ordered_json raw = read_config_json(dir);
  if (raw.contains("architectures") && raw["architectures"].is_array()) {
    const std::string expected = causal_lm_class(config.model_type);
    for (const auto& a : raw["architectures"])
      NIBBLE_CHECK(a.is_string() && a.get<std::string>() == expected,
                   "{}: architectures lists {}; expected [\"{}\"] for model_type \"{}\" (nibble runs causal LMs "
                   "only)", config_file, a.dump(), expected, config.model_type);
  }

  LlamaCheckpoint ck;
  ck.dir = dir;
  ck.hyper = hyper_from_config(config);
  ck.config_dtype = config.dtype;
  ck.prequantized = config.quantization.has_value();
  const LlamaHyper& h = ck.hyper;

  SafetensorsModel model = SafetensorsModel::open(dir);
  TensorReader reader(model, ck.prequantized);
  ck.embed = reader.plain("model.embed_tokens.weight", {h.vocab, h.hidden});
  ck.storage_dtype = ck.embed.dtype();
  const int64_t q_out = h.heads * h.head_dim, kv_out = h.kv_heads * h.head_dim;
  for (int64_t i = 0; i < h.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    LlamaCheckpointBlock b;
    b.input_norm = reader.plain(p + "input_layernorm.weight", {h.hidden});
    b.q = reader.linear(p + "self_attn.q_proj", q_out, h.hidden, h.qkv_bias);
    b.k = reader.linear(p + "self_attn.k_proj", kv_out, h.hidden, h.qkv_bias);
    b.v = reader.linear(p + "self_attn.v_proj", kv_out, h.hidden, h.qkv_bias);
    b.o = reader.linear(p + "self_attn.o_proj", h.hidden, q_out, h.o_bias);
    b.post_norm = reader.plain(p + "post_attention_layernorm.weight", {h.hidden});
    b.gate = reader.linear(p + "mlp.gate_proj", h.intermediate, h.hidden, h.mlp_bias);
    b.up = reader.linear(p + "mlp.up_proj", h.intermediate, h.hidden, h.mlp_bias);
    b.down = reader.linear(p + "mlp.down_proj", h.hidden, h.intermediate, h.mlp_bias);
    ck.blocks.push_back(std::move(b));
  }
  ck.norm = reader.plain("model.norm.weight", {h.hidden});
  if (h.tied_embeddings) {
    ck.lm_head.name = "lm_head (tied to model.embed_tokens)";
    ck.lm_head.out = h.vocab;
    ck.lm_head.in = h.hidden;
    ck.lm_head.weight = ck.embed;
  } else {
    ck.lm_head = reader.linear("lm_head", h.vocab, h.hidden, false);
  }
  reader.check_nothing_left(h);
  return ck;
}

ModelShape model_shape_of(const LlamaHyper& hyper, const std::string& name) {
  ModelShape shape;
  shape.name = name;
  shape.hidden = hyper.hidden;
  shape.intermediate = hyper.intermediate;
  shape.layers = hyper.layers;
  shape.heads = hyper.heads;
  shape.kv_heads = hyper.kv_heads;
  shape.head_dim = hyper.head_dim;
  shape.vocab = hyper.vocab;
  shape.tied_embeddings = hyper.tied_embeddings;
  shape.qkv_bias = hyper.qkv_bias;
  return shape;
}

}  // namespace nibble
