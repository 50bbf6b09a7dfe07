#include "nibble/train/train_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "nibble/core/device.h"
#include "nibble/core/error.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/python_json.h"
#include "nibble/optim/lr_schedule.h"
#include "nibble/optim/optimizer.h"

namespace nibble {

using Json = nlohmann::ordered_json;

namespace {

const char* json_kind(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

[[noreturn]] void wrong_type(const std::string& where, const char* key, const Json& v, const char* expected) {
  fail("{}: \"{}\" is {} ({}); expected {}", where, key, v.dump(), json_kind(v), expected);
}

// One reader per field type; overloads chosen by the member's type.
void read_value(const Json& v, std::string& out, const std::string& where, const char* key) {
  if (v.is_null()) {
    out.clear();
    return;
  }
  if (!v.is_string()) wrong_type(where, key, v, "a string");
  out = v.get<std::string>();
}

void read_value(const Json& v, int64_t& out, const std::string& where, const char* key) {
  if (!v.is_number_integer()) wrong_type(where, key, v, "an integer");
  out = v.get<int64_t>();
}

void read_value(const Json& v, double& out, const std::string& where, const char* key) {
  if (!v.is_number()) wrong_type(where, key, v, "a number");
  out = v.get<double>();
}

void read_value(const Json& v, bool& out, const std::string& where, const char* key) {
  if (!v.is_boolean()) wrong_type(where, key, v, "true or false");
  out = v.get<bool>();
}

// PEFT's forms: "all-linear" (any case), another string = a regex, or a list of names.
void read_value(const Json& v, LoraModuleSelector& out, const std::string& where, const char* key) {
  const char* expected = "\"all-linear\", a regex string or a list of module names";
  LoraModuleSelector s;
  if (v.is_string()) {
    std::string text = v.get<std::string>();
    std::string lower = text;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "all-linear") {
      s.kind = LoraModuleSelector::Kind::all_linear;
    } else {
      s.kind = LoraModuleSelector::Kind::regex;
      s.regex = text;
    }
  } else if (v.is_array()) {
    s.kind = LoraModuleSelector::Kind::names;
    for (const Json& e : v) {
      if (!e.is_string()) wrong_type(where, key, v, expected);
      s.names.push_back(e.get<std::string>());
    }
  } else {
    wrong_type(where, key, v, expected);
  }
  out = std::move(s);
}

Json write_value(const std::string& v) { return v.empty() ? Json() : Json(v); }
Json write_value(int64_t v) { return Json(v); }
Json write_value(double v) { return Json(v); }
Json write_value(bool v) { return Json(v); }
Json write_value(const LoraModuleSelector& s) {
  switch (s.kind) {
    case LoraModuleSelector::Kind::all_linear: return Json("all-linear");
    case LoraModuleSelector::Kind::regex: return Json(s.regex);
    case LoraModuleSelector::Kind::names: return Json(s.names);
  }
  return Json();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Names users bring from other tools whose spelling is far from ours.
const std::pair<const char*, const char*> kKnownAliases[] = {
    {"output_dir", "out"},
    {"model_name_or_path", "model"},
    {"train_file", "data"},
    {"dataset", "data"},
    {"eval_file", "eval_data"},
    {"validation_file", "eval_data"},
    {"lora_r", "r"},
    {"lr", "learning_rate"},
    {"epochs", "num_train_epochs"},
    {"batch_size", "per_device_train_batch_size"},
    {"bf16", "bnb_4bit_compute_dtype"},
    {"fp16", "bnb_4bit_compute_dtype"},
    {"max_seq_len", "max_seq_length"},
    {"sequence_len", "max_seq_length"},
};

std::string closest_option(const std::string& key) {
  for (const auto& alias : kKnownAliases)
    if (key == alias.first) return alias.second;
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  visit_train_options([&](const TrainOptionInfo& info, auto) {
    size_t d = edit_distance(key, info.name);
    if (d < best_distance) {
      best_distance = d;
      best = info.name;
    }
  });
  return best;
}

// "learning_rate (--learning-rate) is -1: expected ..."
[[noreturn]] void bad_field(const char* name, const std::string& value, const std::string& expected) {
  fail("{} ({}) is {}: expected {}", name, train_flag_name(name), value, expected);
}

template <typename T>
void check_range(bool ok, const char* name, T value, const char* expected) {
  if (!ok) bad_field(name, Json(value).dump(), expected);
}

void check_name(const char* name, const std::string& value, void (*parse)(const std::string&)) {
  try {
    parse(value);
  } catch (const Error& e) {
    fail("{} ({}): {}", name, train_flag_name(name), e.what());
  }
}

}  // namespace

TrainConfig train_config_from_json(const Json& json, const std::string& where) {
  NIBBLE_CHECK(json.is_object(), "{}: expected a JSON object of training options, got {}", where, json_kind(json));
  TrainConfig config;
  for (auto it = json.begin(); it != json.end(); ++it) {
    bool known = false;
    visit_train_options([&](const TrainOptionInfo& info, auto member) {
      if (it.key() != info.name) return;
      known = true;
      read_value(it.value(), config.*member, where, info.name);
    });
    if (!known)
      fail("{}: unknown option \"{}\" (did you mean \"{}\"?)", where, it.key(), closest_option(it.key()));
  }
  return config;
}

TrainConfig load_train_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "cannot read the config file {}", path);
  std::stringstream text;
  text << in.rdbuf();
  Json json;
  try {
    json = Json::parse(text.str(), nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  return train_config_from_json(json, path);
}

Json train_config_to_json(const TrainConfig& config) {
  Json json = Json::object();
  visit_train_options([&](const TrainOptionInfo& info, auto member) { json[info.name] = write_value(config.*member); });
  return json;
}

void save_train_config(const std::string& path, const TrainConfig& config) {
  write_file_atomically(path, python_json_dumps(train_config_to_json(config), 2) + "\n");
}

std::string train_flag_name(const std::string& field) {
  std::string flag = "--" + field;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

int64_t parse_memory_size(const std::string& text, const std::string& what) {
  const char* expected = "a size such as 24GiB, 20GB, 512MiB or a byte count";
  size_t pos = 0;
  double number = 0.0;
  try {
    number = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail("{} is \"{}\": expected {}", what, text, expected);
  }
  std::string unit = text.substr(pos);
  unit.erase(0, unit.find_first_not_of(' '));
  std::string lower = unit;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1.0},     {"b", 1.0},           {"kb", 1e3},           {"mb", 1e6},          {"gb", 1e9},
      {"tb", 1e12},  {"kib", 1024.0},      {"mib", 1048576.0},    {"gib", 1073741824.0},
      {"tib", 1099511627776.0},
  };
  for (const auto& u : kUnits) {
    if (lower != u.first) continue;
    const double bytes = number * u.second;
    NIBBLE_CHECK(std::isfinite(bytes) && bytes >= 1.0 && bytes < 9.0e18, "{} is \"{}\": expected a size above 0",
                 what, text);
    return static_cast<int64_t>(bytes);
  }
  fail("{} is \"{}\": unknown unit \"{}\"; expected {}", what, text, unit, expected);
}

void validate_train_config(const TrainConfig& c) {
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"model", &c.model},
                                    {"data", &c.data},
                                    {"out", &c.out}})
    NIBBLE_CHECK(!value->empty(), "{} is not set: give {} or \"{}\" in the --config file", name,
                 train_flag_name(name), name);
  auto finite = [](double v) { return std::isfinite(v); };
  check_range(finite(c.eval_split) && c.eval_split >= 0.0 && c.eval_split < 1.0, "eval_split", c.eval_split,
              "a ratio in [0, 1)");
  NIBBLE_CHECK(c.eval_data.empty() || c.eval_split == 0.0,
               "give either eval_data ({}) or eval_split ({}), not both", c.eval_data, c.eval_split);
  check_range(c.eval_steps >= 0, "eval_steps", c.eval_steps, "0 (every logging_steps) or more");
  check_range(finite(c.learning_rate) && c.learning_rate > 0.0, "learning_rate", c.learning_rate, "a number > 0");
  check_range(finite(c.num_train_epochs) && c.num_train_epochs > 0.0, "num_train_epochs", c.num_train_epochs,
              "a number > 0");
  NIBBLE_CHECK(c.max_steps == -1 || c.max_steps > 0, "max_steps (--max-steps) is {}: expected -1 (from "
               "num_train_epochs) or a step count > 0", c.max_steps);
  check_range(c.per_device_train_batch_size >= 1, "per_device_train_batch_size",
              c.per_device_train_batch_size, "an integer >= 1");
  check_range(c.gradient_accumulation_steps >= 1, "gradient_accumulation_steps",
              c.gradient_accumulation_steps, "an integer >= 1");
  check_range(finite(c.max_grad_norm) && c.max_grad_norm >= 0.0, "max_grad_norm", c.max_grad_norm,
              "a norm > 0, or 0 for no clipping");
  check_range(finite(c.warmup_ratio) && c.warmup_ratio >= 0.0 && c.warmup_ratio < 1.0, "warmup_ratio",
              c.warmup_ratio, "a ratio in [0, 1)");
  check_range(c.warmup_steps >= 0, "warmup_steps", c.warmup_steps, "a step count >= 0");
  check_name("lr_scheduler_type", c.lr_scheduler_type, [](const std::string& v) { parse_lr_schedule(v); });
  check_name("optim", c.optim, [](const std::string& v) { parse_adamw_variant(v); });
  check_range(finite(c.weight_decay) && c.weight_decay >= 0.0, "weight_decay", c.weight_decay, "a number >= 0");
  check_range(finite(c.adam_beta1) && c.adam_beta1 >= 0.0 && c.adam_beta1 < 1.0, "adam_beta1", c.adam_beta1,
              "a number in [0, 1)");
  check_range(finite(c.adam_beta2) && c.adam_beta2 >= 0.0 && c.adam_beta2 < 1.0, "adam_beta2", c.adam_beta2,
              "a number in [0, 1)");
  check_range(finite(c.adam_epsilon) && c.adam_epsilon >= 0.0, "adam_epsilon", c.adam_epsilon, "a number >= 0");
  check_range(c.seed >= 0, "seed", c.seed, "an integer >= 0");
  check_range(c.save_steps >= 1, "save_steps", c.save_steps, "a step count >= 1");
  check_range(c.save_total_limit >= 0, "save_total_limit", c.save_total_limit,
              "a count >= 1, or 0 to keep every checkpoint");
  check_range(c.logging_steps >= 1, "logging_steps", c.logging_steps, "a step count >= 1");
  check_range(c.r >= 1, "r", c.r, "a rank >= 1");
  check_range(finite(c.lora_alpha) && c.lora_alpha > 0.0, "lora_alpha", c.lora_alpha, "a number > 0");
  check_range(finite(c.lora_dropout) && c.lora_dropout >= 0.0 && c.lora_dropout < 1.0, "lora_dropout",
              c.lora_dropout, "a probability in [0, 1)");
  const LoraModuleSelector& t = c.target_modules;
  NIBBLE_CHECK(!(t.kind == LoraModuleSelector::Kind::names && t.names.empty()) &&
                   !(t.kind == LoraModuleSelector::Kind::regex && t.regex.empty()),
               "target_modules (--target-modules) is empty: expected all-linear or module names such as "
               "q_proj,k_proj,v_proj,o_proj");
  check_range(c.max_seq_length >= 2, "max_seq_length", c.max_seq_length,
              "an integer >= 2 (one token predicts the next)");
  check_name("dataset_format", c.dataset_format, [](const std::string& v) { parse_data_format(v); });
  check_name("bnb_4bit_quant_type", c.bnb_4bit_quant_type, [](const std::string& v) { parse_quant_type(v); });
  const std::string& d = c.bnb_4bit_compute_dtype;
  if (d != "bfloat16" && d != "float16" && d != "float32")
    bad_field("bnb_4bit_compute_dtype", d, "bfloat16, float16 or float32");
  if (!c.device.empty()) check_name("device", c.device, [](const std::string& v) { parse_device(v); });
  if (c.on_nonfinite != "stop" && c.on_nonfinite != "skip") bad_field("on_nonfinite", c.on_nonfinite, "stop or skip");
  if (!c.max_gpu_memory.empty()) parse_memory_size(c.max_gpu_memory, "max_gpu_memory (--max-gpu-memory)");
}

LoraConfig train_lora_config(const TrainConfig& c) {
  LoraConfig lora;
  lora.r = c.r;
  lora.lora_alpha = c.lora_alpha;
  lora.lora_dropout = c.lora_dropout;
  lora.target_modules = c.target_modules;
  lora.use_rslora = c.use_rslora;
  lora.base_model_name_or_path = c.model;
  return lora;
}

AdamwHyper train_adamw_hyper(const TrainConfig& c) {
  return AdamwHyper{c.adam_beta1, c.adam_beta2, c.adam_epsilon, c.weight_decay};
}

DatasetOptions train_dataset_options(const TrainConfig& c) {
  DatasetOptions options;
  options.format = parse_data_format(c.dataset_format);
  options.max_seq_length = c.max_seq_length;
  options.train_on_inputs = c.train_on_inputs;
  options.skip_bad_lines = c.skip_bad_lines;
  return options;
}

QuantConfig train_quant_config(const TrainConfig& c) {
  QuantConfig q;
  q.type = parse_quant_type(c.bnb_4bit_quant_type);
  q.double_quant = c.bnb_4bit_use_double_quant;
  return q;
}

DType train_compute_dtype(const TrainConfig& c) {
  std::optional<DType> dtype = dtype_from_torch_name(c.bnb_4bit_compute_dtype);
  NIBBLE_CHECK(dtype && dtype_is_float(*dtype), "bnb_4bit_compute_dtype is {}: expected bfloat16, float16 or float32",
               c.bnb_4bit_compute_dtype);
  return *dtype;
}

std::optional<int64_t> train_max_gpu_memory(const TrainConfig& c) {
  if (c.max_gpu_memory.empty()) return std::nullopt;
  return parse_memory_size(c.max_gpu_memory, "max_gpu_memory (--max-gpu-memory)");
}

BatchOptions train_batch_options(const TrainConfig& c) {
  BatchOptions options;
  options.batch_size = c.per_device_train_batch_size;
  options.packing = c.packing;
  options.shuffle = c.shuffle;
  options.seed = static_cast<uint64_t>(c.seed);
  // With max_steps every epoch gives at least one micro-batch, so this many always suffice.
  options.epochs = c.max_steps > 0 ? c.max_steps * c.gradient_accumulation_steps
                                   : static_cast<int64_t>(std::ceil(c.num_train_epochs));
  return options;
}

int64_t train_total_steps(const TrainConfig& c, int64_t updates_per_epoch) {
  if (c.max_steps > 0) return c.max_steps;
  return std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(c.num_train_epochs * static_cast<double>(updates_per_epoch))));
}

int64_t train_warmup_steps(const TrainConfig& c, int64_t total_steps) {
  if (c.warmup_steps > 0) return c.warmup_steps;
  return static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * c.warmup_ratio));
}

int64_t train_eval_steps(const TrainConfig& c) { return c.eval_steps > 0 ? c.eval_steps : c.logging_steps; }

}  // namespace nibble
