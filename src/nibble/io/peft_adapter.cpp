#include "nibble/io/peft_adapter.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nibble/core/json_depth.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/python_json.h"

namespace nibble {

using Json = nlohmann::ordered_json;

namespace {

// The version whose output we mirror field for field (research/formats.md 5.2).
constexpr const char* kPeftVersion = "0.21.0";

// PEFT's default target_modules for model_type llama (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING),
// used when a config says null.
const std::vector<std::string> kPeftLlamaDefaultTargets = {"q_proj", "v_proj"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_null_or_empty(const Json& v) {
  return v.is_null() || ((v.is_array() || v.is_object() || v.is_string()) && v.empty());
}

// A number written as PEFT writes it: an int when the value is integral (lora_alpha=8 -> 8).
Json number_json(double v) {
  if (std::floor(v) == v && std::fabs(v) < 9.0e15) return Json(static_cast<int64_t>(v));
  return Json(v);
}

Json selector_json(const LoraModuleSelector& s) {
  switch (s.kind) {
    case LoraModuleSelector::Kind::regex: return Json(s.regex);
    case LoraModuleSelector::Kind::all_linear: return Json(peft_block_linear_names());
    case LoraModuleSelector::Kind::names: return Json(s.names);
  }
  return Json();
}

class ConfigReader {
 public:
  ConfigReader(const Json& json, const std::string& file) : json_(json), file_(file) {}

  bool has(const char* key) const { return json_.contains(key) && !json_.at(key).is_null(); }
  const Json& at(const char* key) const { return json_.at(key); }

  [[noreturn]] void bad(const char* key, const char* expected) const {
    fail("{}: \"{}\" is {}; expected {}", file_, key, json_.at(key).dump(), expected);
  }
  [[noreturn]] void unsupported(const char* key, const char* what) const {
    fail("{}: \"{}\" = {}: {} is not supported by nibble", file_, key, json_.at(key).dump(), what);
  }

  int64_t positive_int(const char* key, const Json& v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) bad(key, "a positive integer");
    return v.get<int64_t>();
  }
  double number(const char* key, const Json& v) const {
    if (!v.is_number()) bad(key, "a number");
    return v.get<double>();
  }
  bool flag(const char* key) const {
    if (!has(key)) return false;
    if (!at(key).is_boolean()) bad(key, "true or false");
    return at(key).get<bool>();
  }
  std::optional<std::string> optional_string(const char* key) const {
    if (!has(key)) return std::nullopt;
    if (!at(key).is_string()) bad(key, "a string or null");
    return at(key).get<std::string>();
  }

  LoraModuleSelector selector(const char* key, bool allow_all_linear) const {
    const Json& v = at(key);
    LoraModuleSelector s;
    if (v.is_string()) {
      // PEFT compares the shorthand case-insensitively.
      if (allow_all_linear && lower(v.get<std::string>()) == "all-linear") {
        s.kind = LoraModuleSelector::Kind::all_linear;
      } else {
        s.kind = LoraModuleSelector::Kind::regex;
        s.regex = v.get<std::string>();
      }
      return s;
    }
    if (!v.is_array()) bad(key, "a list of module names or a regex string");
    s.kind = LoraModuleSelector::Kind::names;
    for (const Json& e : v) {
      if (!e.is_string()) bad(key, "a list of module names (strings)");
      s.names.push_back(e.get<std::string>());
    }
    return s;
  }

 private:
  const Json& json_;
  const std::string& file_;
};

void reject_unsupported(const ConfigReader& f) {
  if (f.flag("use_dora")) f.unsupported("use_dora", "DoRA");
  if (f.flag("lora_bias")) f.unsupported("lora_bias", "a bias on lora_B");
  if (f.flag("fan_in_fan_out")) f.unsupported("fan_in_fan_out", "a transposed (Conv1D) base layer");
  if (f.flag("use_qalora")) f.unsupported("use_qalora", "QA-LoRA");
  if (f.has("bias") && f.at("bias") != "none") f.unsupported("bias", "training base-model biases");
  const char* absent_features[][2] = {
      {"modules_to_save", "saving whole modules next to the adapter"},
      {"layer_replication", "layer replication"},
      {"target_parameters", "LoRA on parameters"},
      {"trainable_token_indices", "trainable tokens"},
      {"alora_invocation_tokens", "activated LoRA"},
      {"megatron_config", "Megatron parallel layers"},
      {"arrow_config", "Arrow routing"},
      {"kasa_config", "KaSA"},
      {"monteclora_config", "MonteCLoRA"},
      {"velora_config", "VeLoRA"},
  };
  for (const auto& feature : absent_features) {
    if (f.has(feature[0]) && !is_null_or_empty(f.at(feature[0]))) f.unsupported(feature[0], feature[1]);
  }
  if (f.has("use_bdlora") && !(f.at("use_bdlora").is_boolean() && !f.at("use_bdlora").get<bool>()))
    f.unsupported("use_bdlora", "BD-LoRA");
  // Our module names put the layer index after "layers", so that layers_pattern (or none) works.
  if (f.has("layers_pattern") && !is_null_or_empty(f.at("layers_pattern"))) {
    const Json& p = f.at("layers_pattern");
    const bool is_layers = p == "layers" || (p.is_array() && p.size() == 1 && p[0] == "layers");
    if (!is_layers) f.unsupported("layers_pattern", "a layers_pattern other than \"layers\"");
  }
}

LoraInit parse_init(const ConfigReader& f) {
  if (!f.has("init_lora_weights")) return LoraInit::kaiming;
  const Json& v = f.at("init_lora_weights");
  if (v.is_boolean()) return v.get<bool>() ? LoraInit::kaiming : LoraInit::none;
  if (v.is_string() && lower(v.get<std::string>()) == "gaussian") return LoraInit::gaussian;
  // pissa, olora, loftq, eva, corda, lora_ga ... rewrite the base weights or need data at init.
  f.unsupported("init_lora_weights", "an initialisation other than true, false or \"gaussian\"");
}

}  // namespace

const std::vector<std::string>& peft_block_linear_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

std::string peft_lora_tensor_name(const std::string& module, bool lora_b) {
  return "base_model.model." + module + (lora_b ? ".lora_B.weight" : ".lora_A.weight");
}

Json peft_config_to_json(const LoraConfig& c) {
  Json alpha_pattern = Json::object(), rank_pattern = Json::object();
  for (const auto& [key, alpha] : c.alpha_pattern) alpha_pattern[key] = number_json(alpha);
  for (const auto& [key, r] : c.rank_pattern) rank_pattern[key] = r;
  auto optional_string = [](const std::optional<std::string>& s) { return s ? Json(*s) : Json(); };
  Json init = c.init_lora_weights == LoraInit::gaussian ? Json("gaussian") : Json(c.init_lora_weights == LoraInit::kaiming);

  // Every field PEFT 0.21's LoraConfig serialises (its save_pretrained sorts the keys anyway).
  Json j = Json::object();
  j["alora_invocation_tokens"] = nullptr;
  j["alpha_pattern"] = alpha_pattern;
  j["arrow_config"] = nullptr;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = optional_string(c.base_model_name_or_path);
  j["bias"] = "none";
  j["corda_config"] = nullptr;
  j["ensure_weight_tying"] = false;
  j["eva_config"] = nullptr;
  j["exclude_modules"] = c.exclude_modules ? selector_json(*c.exclude_modules) : Json();
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = init;
  j["kasa_config"] = nullptr;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = c.layers_to_transform ? Json(*c.layers_to_transform) : Json();
  j["loftq_config"] = Json::object();
  j["lora_alpha"] = number_json(c.lora_alpha);
  j["lora_bias"] = false;
  j["lora_dropout"] = c.lora_dropout;
  j["lora_ga_config"] = nullptr;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["monteclora_config"] = nullptr;
  j["peft_type"] = "LORA";
  j["peft_version"] = kPeftVersion;
  j["qalora_group_size"] = 16;
  j["r"] = c.r;
  j["rank_pattern"] = rank_pattern;
  j["revision"] = optional_string(c.revision);
  j["target_modules"] = selector_json(c.target_modules);
  j["target_parameters"] = nullptr;
  j["task_type"] = optional_string(c.task_type);
  j["trainable_token_indices"] = nullptr;
  j["use_bdlora"] = nullptr;
  j["use_dora"] = false;
  j["use_qalora"] = false;
  j["use_rslora"] = c.use_rslora;
  j["velora_config"] = nullptr;
  return j;
}

LoraConfig peft_config_from_json(const Json& json, const std::string& file) {
  NIBBLE_CHECK(json.is_object(), "{}: is {}; expected a JSON object", file, json.type_name());
  ConfigReader f(json, file);
  NIBBLE_CHECK(f.has("peft_type"), "{}: no \"peft_type\"; expected \"LORA\"", file);
  if (f.at("peft_type") != "LORA") f.unsupported("peft_type", "an adapter type other than LORA");
  reject_unsupported(f);

  LoraConfig c;
  if (f.has("r")) c.r = f.positive_int("r", f.at("r"));
  if (f.has("lora_alpha")) c.lora_alpha = f.number("lora_alpha", f.at("lora_alpha"));
  if (f.has("lora_dropout")) {
    c.lora_dropout = f.number("lora_dropout", f.at("lora_dropout"));
    if (!(c.lora_dropout >= 0.0 && c.lora_dropout < 1.0)) f.bad("lora_dropout", "a probability in [0, 1)");
  }
  if (f.has("target_modules")) {
    c.target_modules = f.selector("target_modules", true);
  } else {
    c.target_modules.kind = LoraModuleSelector::Kind::names;
    c.target_modules.names = kPeftLlamaDefaultTargets;
  }
  if (f.has("exclude_modules")) c.exclude_modules = f.selector("exclude_modules", false);
  if (f.has("layers_to_transform")) {
    const Json& v = f.at("layers_to_transform");
    std::vector<int64_t> layers;
    if (v.is_number_integer()) layers.push_back(v.get<int64_t>());
    else if (v.is_array()) {
      for (const Json& e : v) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0) f.bad("layers_to_transform", "layer indices");
        layers.push_back(e.get<int64_t>());
      }
    } else {
      f.bad("layers_to_transform", "an integer or a list of integers");
    }
    c.layers_to_transform = layers;
  }
  c.use_rslora = f.flag("use_rslora");
  c.init_lora_weights = parse_init(f);
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (!f.has(key)) continue;
    if (!f.at(key).is_object()) f.bad(key, "an object of module pattern -> value");
    for (const auto& [pattern, value] : f.at(key).items()) {
      if (std::string(key) == "rank_pattern") c.rank_pattern.emplace_back(pattern, f.positive_int(key, value));
      else c.alpha_pattern.emplace_back(pattern, f.number(key, value));
    }
  }
  c.base_model_name_or_path = f.optional_string("base_model_name_or_path");
  c.revision = f.optional_string("revision");
  c.task_type = f.optional_string("task_type");
  return c;
}

PeftAdapterFiles read_peft_adapter(const std::string& dir) {
  const std::string config_path = dir + "/adapter_config.json";
  std::ifstream in(config_path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "{}: cannot open; expected a PEFT adapter folder with adapter_config.json", config_path);
  std::stringstream text;
  text << in.rdbuf();
  Json json;
  try {
    json = Json::parse(text.str(), json_depth_limit<Json>(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", config_path, e.what());
  }
  LoraConfig config = peft_config_from_json(json, config_path);
  const std::string weights_path = dir + "/adapter_model.safetensors";
  NIBBLE_CHECK(std::filesystem::exists(weights_path),
               "{}: missing; expected the adapter's tensors there (adapter_model.bin, the pickle format, is "
               "not read)", weights_path);
  return PeftAdapterFiles{dir, config_path, weights_path, std::move(config), SafetensorsFile::open(weights_path)};
}

void write_peft_adapter(const std::string& dir, const LoraConfig& config,
                        const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  NIBBLE_CHECK(!ec, "{}: cannot create the adapter folder ({})", dir, ec.message());
  save_safetensors(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomically(dir + "/adapter_config.json", python_json_dumps(peft_config_to_json(config), 2, true));
}

}  // namespace nibble
