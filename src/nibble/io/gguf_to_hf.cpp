#include "nibble/io/gguf_to_hf.h"

#include <algorithm>
#include <cstring>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/gguf_tokenizer.h"
#include "nibble/io/python_json.h"
#include "nibble/io/safetensors.h"

namespace nibble {

namespace {

using Json = nlohmann::ordered_json;

// The hyperparameters the llama.* keys give, in the letters of llama.h.
struct LlamaShape {
  int64_t hidden = 0;        // C
  int64_t intermediate = 0;  // F
  int64_t layers = 0;        // L
  int64_t heads = 0;         // H
  int64_t kv_heads = 0;      // KVH
  int64_t head_dim = 0;      // D
  int64_t vocab = 0;         // V
};

int64_t positive(const GgufFile& file, const std::string& key) {
  const int64_t v = file.integer(key);
  NIBBLE_CHECK(v > 0, "{}: {} is {}; expected a positive integer", file.path(), key, v);
  return v;
}

// A metadata float as config.json would hold it: the f32 GGUF stores for 1e-05 is
// 9.999999747378752e-06; its shortest float32 spelling gives back the value the model was made with.
double shortest_float(const GgufFile& file, const std::string& key) {
  const GgufValue* v = file.find(key);
  const double value = file.number(key);
  if (v->type != GgufValueType::f32) return value;
  return std::stod(fmt::format("{}", static_cast<float>(value)));
}

void check_architecture(const GgufFile& file) {
  if (file.has("split.count"))
    NIBBLE_CHECK(file.integer("split.count") <= 1, "{}: this is part {} of a GGUF split into {} files; expected one "
                 "whole file (llama.cpp's llama-gguf-split --merge joins them)", file.path(),
                 file.has("split.no") ? file.integer("split.no") + 1 : 1, file.integer("split.count"));
  const std::string arch = file.string("general.architecture");
  NIBBLE_CHECK(arch == "llama", "{}: general.architecture is \"{}\"; nibble imports \"llama\" GGUF models (Llama, "
               "Mistral, SmolLM2, TinyLlama)", file.path(), arch);
  if (file.has("llama.expert_count"))
    NIBBLE_CHECK(file.integer("llama.expert_count") == 0, "{}: llama.expert_count is {}; mixture-of-experts models "
                 "are not supported", file.path(), file.integer("llama.expert_count"));
}

LlamaShape llama_shape(const GgufFile& file) {
  check_architecture(file);
  const std::string& path = file.path();
  LlamaShape s;
  s.hidden = positive(file, "llama.embedding_length");
  s.intermediate = positive(file, "llama.feed_forward_length");
  s.layers = positive(file, "llama.block_count");
  s.heads = positive(file, "llama.attention.head_count");
  if (file.has("llama.attention.head_count_kv")) {
    const GgufValue* v = file.find("llama.attention.head_count_kv");
    NIBBLE_CHECK(v->type != GgufValueType::array, "{}: llama.attention.head_count_kv is an array (a different count "
                 "per layer); expected one integer", path);
    s.kv_heads = positive(file, "llama.attention.head_count_kv");
  } else {
    s.kv_heads = s.heads;
  }
  NIBBLE_CHECK(s.heads % s.kv_heads == 0, "{}: llama.attention.head_count_kv is {}; expected a divisor of "
               "llama.attention.head_count ({})", path, s.kv_heads, s.heads);
  if (file.has("llama.attention.key_length")) {
    s.head_dim = positive(file, "llama.attention.key_length");
  } else {
    NIBBLE_CHECK(s.hidden % s.heads == 0, "{}: llama.embedding_length {} is not a multiple of "
                 "llama.attention.head_count {}, and llama.attention.key_length is absent", path, s.hidden, s.heads);
    s.head_dim = s.hidden / s.heads;
  }
  if (file.has("llama.attention.value_length"))
    NIBBLE_CHECK(file.integer("llama.attention.value_length") == s.head_dim, "{}: llama.attention.value_length is {}; "
                 "expected the key length {}", path, file.integer("llama.attention.value_length"), s.head_dim);
  NIBBLE_CHECK(s.head_dim % 2 == 0, "{}: the head dimension is {}; expected an even number (RoPE rotates pairs)",
               path, s.head_dim);
  if (file.has("llama.rope.dimension_count"))
    NIBBLE_CHECK(file.integer("llama.rope.dimension_count") == s.head_dim, "{}: llama.rope.dimension_count is {}; "
                 "expected the head dimension {} (partial rotary embeddings are not supported)", path,
                 file.integer("llama.rope.dimension_count"), s.head_dim);

  const GgufTensorInfo& embed = file.tensor("token_embd.weight");
  NIBBLE_CHECK(embed.ne.size() == 2 && embed.ne[0] == s.hidden, "{}: tensor 'token_embd.weight' has ne {}; expected "
               "[{}, vocab]", path, shape_to_string(embed.ne), s.hidden);
  s.vocab = embed.ne[1];
  if (file.has("llama.vocab_size"))
    NIBBLE_CHECK(file.integer("llama.vocab_size") == s.vocab, "{}: llama.vocab_size is {}, but token_embd.weight has "
                 "{} rows", path, file.integer("llama.vocab_size"), s.vocab);
  return s;
}

// rope_scaling for config.json: null, or linear with its factor. The other kinds need values
// GGUF does not keep in a form transformers reads (yarn, llama3's rope_freqs tensor).
Json rope_scaling(const GgufFile& file) {
  const std::string& path = file.path();
  NIBBLE_CHECK(file.find_tensor("rope_freqs.weight") == nullptr, "{}: tensor 'rope_freqs.weight' (Llama 3.1-style "
               "RoPE frequency scaling) is not supported", path);
  std::string type = file.has("llama.rope.scaling.type") ? file.string("llama.rope.scaling.type") : "none";
  double factor = 0;
  if (type == "linear") {
    factor = file.number("llama.rope.scaling.factor");
  } else if (type == "none" && file.has("llama.rope.scale_linear")) {
    factor = file.number("llama.rope.scale_linear");  // the key older converters wrote
    type = factor == 1.0 ? "none" : "linear";
  }
  NIBBLE_CHECK(type == "none" || type == "linear", "{}: llama.rope.scaling.type is \"{}\"; expected \"none\" or "
               "\"linear\"", path, type);
  if (type == "none") return Json();
  NIBBLE_CHECK(factor > 0, "{}: the linear RoPE scaling factor is {}; expected a positive number", path, factor);
  return Json{{"factor", factor}, {"rope_type", "linear"}};
}

// eos_token_id for config.json: the EOS id, plus the end-of-turn id when the file has a
// different one (chat models stop at either).
Json eos_ids(const GgufFile& file) {
  Json ids = Json::array();
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"}) {
    if (!file.has(key)) continue;
    const int64_t id = file.integer(key);
    if (std::find(ids.begin(), ids.end(), Json(id)) == ids.end()) ids.push_back(id);
  }
  if (ids.empty()) return Json();
  return ids.size() == 1 ? ids[0] : ids;
}

// The GGUF shape (ne) every llama tensor must have, by its name; empty for a name that is not
// a llama tensor.
std::vector<int64_t> expected_ne(const std::string& name, const LlamaShape& s) {
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  if (name == "token_embd.weight" || name == "output.weight") return {s.hidden, s.vocab};
  if (name == "output_norm.weight") return {s.hidden};
  static const std::regex block(R"(blk\.(\d+)\.([a-z_]+)\.weight)");
  std::smatch m;
  if (!std::regex_match(name, m, block)) return {};
  const std::string layer = m[1].str();
  // Canonical decimal block numbers below the block count ("blk.07" is not a llama name).
  if (layer.size() > 9 || (layer.size() > 1 && layer[0] == '0') || std::stoll(layer) >= s.layers) return {};
  const std::string part = m[2].str();
  if (part == "attn_norm" || part == "ffn_norm") return {s.hidden};
  if (part == "attn_q") return {s.hidden, q};
  if (part == "attn_k" || part == "attn_v") return {s.hidden, kv};
  if (part == "attn_output") return {q, s.hidden};
  if (part == "ffn_gate" || part == "ffn_up") return {s.hidden, s.intermediate};
  if (part == "ffn_down") return {s.intermediate, s.hidden};
  return {};
}

// Every tensor of the file is a llama tensor of the right shape, and every one the model needs
// is there.
void check_tensors(const GgufFile& file, const LlamaShape& s) {
  const std::string& path = file.path();
  for (const GgufTensorInfo& t : file.tensors()) {
    const std::vector<int64_t> expected = expected_ne(t.name, s);
    NIBBLE_CHECK(!expected.empty(), "{}: unexpected tensor '{}'; expected only llama tensors (token_embd, "
                 "output_norm, output, blk.N.attn_norm|attn_q|attn_k|attn_v|attn_output|ffn_norm|ffn_gate|ffn_up|"
                 "ffn_down for N < {})", path, t.name, s.layers);
    NIBBLE_CHECK(t.ne == expected, "{}: tensor '{}' has ne {}; expected {} (GGUF order, fastest dimension first)",
                 path, t.name, shape_to_string(t.ne), shape_to_string(expected));
  }
  std::vector<std::string> required = {"token_embd.weight", "output_norm.weight"};
  for (int64_t i = 0; i < s.layers; ++i)
    for (const char* part : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                             "ffn_up", "ffn_down"})
      required.push_back(fmt::format("blk.{}.{}.weight", i, part));
  for (const std::string& name : required)
    NIBBLE_CHECK(file.find_tensor(name) != nullptr, "{}: tensor '{}' is missing; a llama model with {} blocks needs it",
                 path, name, s.layers);
}

Tensor to_bf16(const Tensor& f32) {
  Tensor out = Tensor::empty(f32.shape(), DType::bf16);
  const float* in = f32.data_as<float>();
  bf16_t* o = out.data_as<bf16_t>();
  for (int64_t i = 0; i < f32.numel(); ++i) o[i] = float_to_bf16(in[i]);
  return out;
}

void write_json(const std::string& path, const Json& value) {
  write_file_atomically(path, python_json_dumps(value, 2, /*sort_keys=*/true) + "\n");
}

}  // namespace

Json gguf_to_hf_config(const GgufFile& file) {
  const LlamaShape s = llama_shape(file);
  Json c = Json::object();
  c["architectures"] = Json::array({"LlamaForCausalLM"});
  c["attention_bias"] = false;
  c["attention_dropout"] = 0.0;
  if (file.has("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = file.integer("tokenizer.ggml.bos_token_id");
  Json eos = eos_ids(file);
  if (!eos.is_null()) c["eos_token_id"] = eos;
  c["head_dim"] = s.head_dim;
  c["hidden_act"] = "silu";
  c["hidden_size"] = s.hidden;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = s.intermediate;
  c["max_position_embeddings"] = positive(file, "llama.context_length");
  c["mlp_bias"] = false;
  c["model_type"] = "llama";
  c["num_attention_heads"] = s.heads;
  c["num_hidden_layers"] = s.layers;
  c["num_key_value_heads"] = s.kv_heads;
  c["pretraining_tp"] = 1;
  c["rms_norm_eps"] = shortest_float(file, "llama.attention.layer_norm_rms_epsilon");
  c["rope_scaling"] = rope_scaling(file);
  c["rope_theta"] = file.has("llama.rope.freq_base") ? shortest_float(file, "llama.rope.freq_base") : 10000.0;
  c["tie_word_embeddings"] = file.find_tensor("output.weight") == nullptr;
  c["torch_dtype"] = "bfloat16";
  c["use_cache"] = true;
  c["vocab_size"] = s.vocab;
  return c;
}

std::optional<std::string> gguf_to_hf_tensor_name(const std::string& name) {
  if (name == "token_embd.weight") return std::string("model.embed_tokens.weight");
  if (name == "output_norm.weight") return std::string("model.norm.weight");
  if (name == "output.weight") return std::string("lm_head.weight");
  static const std::regex block(R"(blk\.(\d+)\.([a-z_]+)\.weight)");
  static const std::pair<const char*, const char*> parts[] = {
      {"attn_norm", "input_layernorm"},   {"attn_q", "self_attn.q_proj"},       {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},     {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},      {"ffn_up", "mlp.up_proj"},           {"ffn_down", "mlp.down_proj"}};
  std::smatch m;
  if (!std::regex_match(name, m, block)) return std::nullopt;
  for (const auto& [gguf, hf] : parts)
    if (m[2].str() == gguf) return fmt::format("model.layers.{}.{}.weight", m[1].str(), hf);
  return std::nullopt;
}

Tensor gguf_unpermute_qk(const Tensor& weight, int64_t heads) {
  NIBBLE_ASSERT(weight.dtype() == DType::f32 && weight.rank() == 2 && heads > 0);
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  NIBBLE_ASSERT(rows % (2 * heads) == 0);
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  Tensor out = Tensor::empty(weight.shape(), DType::f32);
  const float* in = weight.data_as<float>();
  float* o = out.data_as<float>();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t gguf_row = h * head_dim + 2 * i + s, hf_row = h * head_dim + s * half + i;
        std::memcpy(o + hf_row * cols, in + gguf_row * cols, static_cast<size_t>(cols) * sizeof(float));
      }
  return out;
}

GgufImportSummary import_gguf(const GgufFile& file, const std::string& dir, const GgufImportProgress& progress) {
  // Everything that can be refused is checked before the first byte is written.
  const Json config = gguf_to_hf_config(file);
  const LlamaShape s = llama_shape(file);
  check_tensors(file, s);
  const HfTokenizerFiles tokenizer = gguf_to_hf_tokenizer(file);
  NIBBLE_CHECK(file.string_array("tokenizer.ggml.tokens").size() <= static_cast<size_t>(s.vocab), "{}: "
               "tokenizer.ggml.tokens has more tokens than token_embd.weight has rows ({})", file.path(), s.vocab);

  GgufImportSummary summary;
  summary.architecture = file.string("general.architecture");
  if (file.has("general.name")) summary.name = file.string("general.name");
  summary.tied_embeddings = config["tie_word_embeddings"].get<bool>();

  std::vector<std::pair<std::string, Tensor>> tensors;
  const int64_t total = static_cast<int64_t>(file.tensors().size());
  for (const GgufTensorInfo& info : file.tensors()) {
    if (progress) progress(summary.tensors, total, info.name);
    Tensor weight = file.dequantize(info);
    const std::string hf_name = *gguf_to_hf_tensor_name(info.name);
    if (hf_name.find("self_attn.q_proj") != std::string::npos) weight = gguf_unpermute_qk(weight, s.heads);
    if (hf_name.find("self_attn.k_proj") != std::string::npos) weight = gguf_unpermute_qk(weight, s.kv_heads);
    summary.parameters += weight.numel();
    ++summary.source_types[info.type.name];
    tensors.emplace_back(hf_name, to_bf16(weight));
    ++summary.tensors;
  }
  if (progress) progress(summary.tensors, total, "writing model.safetensors");

  write_json(dir + "/config.json", config);
  Json generation = Json::object();
  if (config.contains("bos_token_id")) generation["bos_token_id"] = config["bos_token_id"];
  if (config.contains("eos_token_id")) generation["eos_token_id"] = config["eos_token_id"];
  write_json(dir + "/generation_config.json", generation);
  write_file_atomically(dir + "/tokenizer.json", tokenizer.tokenizer_json);
  write_json(dir + "/tokenizer_config.json", tokenizer.tokenizer_config);
  save_safetensors(dir + "/model.safetensors", tensors);
  return summary;
}

}  // namespace nibble
