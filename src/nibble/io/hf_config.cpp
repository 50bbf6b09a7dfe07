#include "nibble/io/hf_config.h"

#include <fstream>
#include <sstream>

#include "nibble/core/error.h"
#include "nibble/core/json_depth.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/python_json.h"

namespace nibble {

namespace {

using Json = nlohmann::ordered_json;

// Typed access to one JSON object, with errors that name the file, the full key and the type
// that was expected. A key holding null counts as absent, as transformers treats it.
class Fields {
 public:
  Fields(const Json& object, std::string file, std::string prefix = "")
      : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

  bool has(const char* key) const { return object_.contains(key) && !object_[key].is_null(); }
  const Json& raw(const char* key) const { return object_[key]; }
  std::string name(const char* key) const { return prefix_ + key; }

  [[noreturn]] void wrong(const char* key, const char* expected) const {
    if (!has(key)) fail("{}: missing key '{}'; expected {}", file_, name(key), expected);
    fail("{}: key '{}' is {}; expected {}", file_, name(key), object_[key].dump(), expected);
  }

  int64_t integer(const char* key) const {
    if (!has(key) || !object_[key].is_number_integer()) wrong(key, "an integer");
    return object_[key].get<int64_t>();
  }
  int64_t integer(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  int64_t positive(const char* key) const {
    int64_t v = integer(key);
    if (v <= 0) wrong(key, "a positive integer");
    return v;
  }
  int64_t positive(const char* key, int64_t fallback) const { return has(key) ? positive(key) : fallback; }

  double number(const char* key) const {
    if (!has(key) || !object_[key].is_number()) wrong(key, "a number");
    return object_[key].get<double>();
  }
  double number(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!object_[key].is_boolean()) wrong(key, "true or false");
    return object_[key].get<bool>();
  }

  std::string string(const char* key) const {
    if (!has(key) || !object_[key].is_string()) wrong(key, "a string");
    return object_[key].get<std::string>();
  }
  std::string string(const char* key, const std::string& fallback) const { return has(key) ? string(key) : fallback; }

  const std::string& file() const { return file_; }

 private:
  const Json& object_;
  std::string file_;
  std::string prefix_;
};

DType float_dtype(const Fields& f, const char* key) {
  std::optional<DType> dtype = dtype_from_torch_name(f.string(key));
  if (!dtype || (*dtype != DType::f32 && *dtype != DType::f16 && *dtype != DType::bf16))
    f.wrong(key, "\"float32\", \"float16\" or \"bfloat16\"");
  return *dtype;
}

// The scaling part of RoPE, from rope_scaling (v4) or rope_parameters (v5): both hold
// rope_type (or the older alias "type") and the type's own fields.
void parse_rope_scaling(const Fields& f, RopeConfig& rope) {
  std::string type = f.has("rope_type") ? f.string("rope_type") : f.string("type", "default");
  if (f.has("rope_type") && f.has("type") && f.string("type") != type)
    f.wrong("type", fmt::format("the same value as rope_type (\"{}\")", type).c_str());
  if (type == "default") {
    rope.type = RopeType::default_rope;
    return;
  }
  if (type != "linear" && type != "llama3") f.wrong(f.has("rope_type") ? "rope_type" : "type", "\"default\", \"linear\" or \"llama3\" (yarn, dynamic and longrope are not supported)");
  rope.factor = f.number("factor");
  if (!(rope.factor > 0)) f.wrong("factor", "a positive number");
  if (type == "linear") {
    rope.type = RopeType::linear;
    return;
  }
  rope.type = RopeType::llama3;
  rope.low_freq_factor = f.number("low_freq_factor");
  rope.high_freq_factor = f.number("high_freq_factor");
  rope.original_max_position_embeddings = f.positive("original_max_position_embeddings");
  // The interpolation divides by (high - low); equal factors would make it undefined.
  if (!(rope.low_freq_factor > 0)) f.wrong("low_freq_factor", "a positive number");
  if (!(rope.high_freq_factor > rope.low_freq_factor)) f.wrong("high_freq_factor", "a number above low_freq_factor");
}

RopeConfig parse_rope(const Fields& top) {
  RopeConfig rope;
  rope.theta = top.number("rope_theta", 10000.0);
  if (top.has("rope_parameters")) {  // transformers 5
    if (!top.raw("rope_parameters").is_object()) top.wrong("rope_parameters", "an object");
    Fields f(top.raw("rope_parameters"), top.file(), "rope_parameters.");
    rope.theta = f.number("rope_theta", rope.theta);
    parse_rope_scaling(f, rope);
  } else if (top.has("rope_scaling")) {  // transformers 4
    if (!top.raw("rope_scaling").is_object()) top.wrong("rope_scaling", "an object or null");
    parse_rope_scaling(Fields(top.raw("rope_scaling"), top.file(), "rope_scaling."), rope);
  }
  if (!(rope.theta > 0)) top.wrong("rope_theta", "a positive number");
  return rope;
}

QuantType quant_type_from(const Fields& f) {
  std::string name = f.string("bnb_4bit_quant_type", "fp4");
  if (name == "nf4") return QuantType::nf4;
  if (name != "fp4") f.wrong("bnb_4bit_quant_type", "\"nf4\" or \"fp4\"");
  return QuantType::fp4;
}

}  // namespace

BnbQuantizationConfig parse_bnb_quantization_config(const Json& block, const std::string& file) {
  if (!block.is_object()) fail("{}: key 'quantization_config' is {}; expected an object", file, block.dump());
  Fields f(block, file, "quantization_config.");
  std::string method = f.string("quant_method", "bitsandbytes");
  if (method != "bitsandbytes") f.wrong("quant_method", "\"bitsandbytes\" (the only quantized format nibble reads)");
  if (!f.boolean("load_in_4bit", false)) {
    f.wrong("load_in_4bit", f.boolean("load_in_8bit", false) ? "true (8-bit bitsandbytes models are not supported)"
                                                              : "true");
  }
  BnbQuantizationConfig config;
  config.quant_type = quant_type_from(f);
  config.double_quant = f.boolean("bnb_4bit_use_double_quant", false);
  config.compute_dtype = f.has("bnb_4bit_compute_dtype") ? float_dtype(f, "bnb_4bit_compute_dtype") : DType::f32;
  config.quant_storage = DType::u8;
  if (f.has("bnb_4bit_quant_storage")) {
    std::optional<DType> storage = dtype_from_torch_name(f.string("bnb_4bit_quant_storage"));
    if (!storage) f.wrong("bnb_4bit_quant_storage", "a torch dtype name such as \"uint8\"");
    config.quant_storage = *storage;
  }
  if (f.has("llm_int8_skip_modules")) {
    const Json& list = f.raw("llm_int8_skip_modules");
    if (!list.is_array()) f.wrong("llm_int8_skip_modules", "a list of module names or null");
    config.skip_modules.emplace();
    for (const auto& item : list) {
      if (!item.is_string()) f.wrong("llm_int8_skip_modules", "a list of module names or null");
      config.skip_modules->push_back(item.get<std::string>());
    }
  }
  return config;
}

Json bnb_quantization_config_json(const BnbQuantizationConfig& config) {
  Json j = Json::object();
  j["_load_in_4bit"] = true;
  j["_load_in_8bit"] = false;
  j["bnb_4bit_compute_dtype"] = std::string(dtype_torch_name(config.compute_dtype));
  j["bnb_4bit_quant_storage"] = std::string(dtype_torch_name(config.quant_storage));
  j["bnb_4bit_quant_type"] = quant_type_name(config.quant_type);
  j["bnb_4bit_use_double_quant"] = config.double_quant;
  j["llm_int8_enable_fp32_cpu_offload"] = false;
  j["llm_int8_has_fp16_weight"] = false;
  j["llm_int8_skip_modules"] = config.skip_modules ? Json(*config.skip_modules) : Json(nullptr);
  j["llm_int8_threshold"] = 6.0;
  j["load_in_4bit"] = true;
  j["load_in_8bit"] = false;
  j["quant_method"] = "bitsandbytes";
  return j;
}

ModelConfig parse_model_config(const Json& json, const std::string& file) {
  if (!json.is_object()) fail("{}: top level is {}; expected a JSON object", file, json.type_name());
  Fields f(json, file);
  ModelConfig c;
  c.model_type = f.string("model_type");
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2")
    f.wrong("model_type", "\"llama\", \"mistral\" or \"qwen2\"");

  c.hidden_size = f.positive("hidden_size");
  c.intermediate_size = f.positive("intermediate_size");
  c.num_hidden_layers = f.positive("num_hidden_layers");
  c.num_attention_heads = f.positive("num_attention_heads");
  c.num_key_value_heads = f.positive("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.wrong("num_key_value_heads", fmt::format("a divisor of num_attention_heads ({})", c.num_attention_heads).c_str());
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    f.wrong("head_dim", "a value, since hidden_size is not a multiple of num_attention_heads");
  c.head_dim = f.positive("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.head_dim % 2 != 0) f.wrong("head_dim", "an even number (RoPE rotates pairs)");
  c.vocab_size = f.positive("vocab_size");
  // transformers' class defaults where the key is absent.
  int64_t default_positions = c.model_type == "llama" ? 2048 : c.model_type == "mistral" ? 131072 : 32768;
  c.max_position_embeddings = f.positive("max_position_embeddings", default_positions);
  c.rms_norm_eps = f.number("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0)) f.wrong("rms_norm_eps", "a positive number");
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);

  bool attention_bias = f.boolean("attention_bias", false);
  c.qkv_bias = c.model_type == "qwen2" || attention_bias;  // Qwen2 hard-wires q/k/v biases
  c.o_proj_bias = c.model_type != "qwen2" && attention_bias;
  c.mlp_bias = f.boolean("mlp_bias", false);
  c.hidden_act = f.string("hidden_act", "silu");
  if (c.hidden_act != "silu") f.wrong("hidden_act", "\"silu\"");

  if (f.has("bos_token_id")) c.bos_token_id = f.integer("bos_token_id");
  if (f.has("eos_token_id")) {
    const Json& eos = f.raw("eos_token_id");
    if (eos.is_number_integer()) {
      c.eos_token_ids.push_back(eos.get<int64_t>());
    } else if (eos.is_array()) {
      for (const auto& id : eos) {
        if (!id.is_number_integer()) f.wrong("eos_token_id", "an integer or a list of integers");
        c.eos_token_ids.push_back(id.get<int64_t>());
      }
    } else {
      f.wrong("eos_token_id", "an integer or a list of integers");
    }
  }
  if (f.has("dtype")) c.dtype = float_dtype(f, "dtype");
  else if (f.has("torch_dtype")) c.dtype = float_dtype(f, "torch_dtype");

  // Mistral's class default is a 4096 window; Qwen2 only slides with use_sliding_window.
  bool slides = c.model_type != "qwen2" || f.boolean("use_sliding_window", false);
  if (slides && f.has("sliding_window")) c.sliding_window = f.positive("sliding_window");
  else if (c.model_type == "mistral" && !json.contains("sliding_window")) c.sliding_window = 4096;

  c.rope = parse_rope(f);
  if (f.has("quantization_config")) c.quantization = parse_bnb_quantization_config(f.raw("quantization_config"), file);
  return c;
}

Json read_config_json(const std::string& dir) {
  std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "{}: cannot open; expected a Hugging Face model folder with config.json", path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return Json::parse(text.str(), json_depth_limit<Json>(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}

ModelConfig load_model_config(const std::string& dir) {
  return parse_model_config(read_config_json(dir), dir + "/config.json");
}

void save_quantized_model_config(const std::string& dir, const Json& original, const BnbQuantizationConfig& config) {
  std::string path = dir + "/config.json";
  NIBBLE_CHECK(original.is_object(), "{}: the configuration to write is {}; expected a JSON object", path,
               original.type_name());
  Json out = original;
  out["quantization_config"] = bnb_quantization_config_json(config);
  write_file_atomically(path, python_json_dumps(out, 2, true) + "\n");
}

}  // namespace nibble
