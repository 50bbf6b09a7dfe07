#include "nibble/text/chat_template.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "nibble/core/error.h"
#include "nibble/core/json_depth.h"

namespace nibble {
namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buf;
  buf << in.rdbuf();
  out = buf.str();
  return true;
}

// A special token in tokenizer_config.json is a string or an AddedToken object {"content": ...}.
std::string token_text(const nlohmann::ordered_json& config, const char* key, const std::string& path) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("{}: \"{}\" should be a string or an object with \"content\"", path, key);
}

nlohmann::ordered_json parse_config(const std::string& text, const std::string& path) {
  try {
    return nlohmann::ordered_json::parse(text, json_depth_limit<nlohmann::ordered_json>(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

ChatSpecialTokens config_special_tokens(const nlohmann::ordered_json& config, const std::string& path) {
  NIBBLE_CHECK(config.is_object(), "{}: is {}; expected a JSON object", path, config.type_name());
  return ChatSpecialTokens{token_text(config, "bos_token", path), token_text(config, "eos_token", path),
                           token_text(config, "unk_token", path), token_text(config, "pad_token", path)};
}

// tokenizer_config.json "chat_template": a string, or a list of {name, template} whose "default"
// entry is the template.
std::string template_source(const nlohmann::ordered_json& config, const std::string& path, const std::string& model) {
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null())
    fail("{}: the model has no chat template (no chat_template.jinja and no \"chat_template\" in {})", model, path);
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::optional<std::string> source;
    for (const auto& entry : *it) {
      if (entry.is_object() && entry.contains("name") && entry["name"] == "default" && entry.contains("template") &&
          entry["template"].is_string())
        source = entry["template"].get<std::string>();
    }
    if (!source) fail("{}: \"chat_template\" is a list without a template named \"default\"", path);
    return *source;
  }
  fail("{}: \"chat_template\" should be a string or a list of {{name, template}}", path);
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, ChatSpecialTokens tokens)
    : source_(std::move(source)), tokens_(std::move(tokens)) {
  template_ = std::make_shared<const jinja::Template>(source_);
}

ChatTemplate ChatTemplate::from_string(std::string source, ChatSpecialTokens tokens) {
  return ChatTemplate(std::move(source), std::move(tokens));
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& config_text, const std::string& where) {
  nlohmann::ordered_json config = parse_config(config_text, where);
  ChatSpecialTokens tokens = config_special_tokens(config, where);
  std::string source = template_source(config, where, where);
  try {
    return ChatTemplate(std::move(source), std::move(tokens));
  } catch (...) {
    rethrow_with_context(where);
  }
}

std::optional<ChatTemplate> ChatTemplate::load_if_present(const std::string& model_dir) {
  bool present = std::filesystem::exists(model_dir + "/chat_template.jinja");
  const std::string config = model_dir + "/tokenizer_config.json";
  if (!present && std::filesystem::exists(config)) {
    const nlohmann::json json = nlohmann::json::parse(std::ifstream(config), nullptr, /*allow_exceptions=*/false);
    present = !json.is_object() || (json.contains("chat_template") && !json["chat_template"].is_null());
  }
  if (!present) return std::nullopt;
  return load(model_dir);
}

ChatTemplate ChatTemplate::load(const std::string& model_dir) {
  const std::string config_path = model_dir + "/tokenizer_config.json";
  std::string text;
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  if (read_file(config_path, text)) config = parse_config(text, config_path);
  ChatSpecialTokens tokens = config_special_tokens(config, config_path);
  std::string source;
  const std::string sidecar = model_dir + "/chat_template.jinja";
  if (read_file(sidecar, source)) {
    try {
      return ChatTemplate(std::move(source), std::move(tokens));
    } catch (...) {
      rethrow_with_context(sidecar);
    }
  }
  source = template_source(config, config_path, model_dir);
  try {
    return ChatTemplate(std::move(source), std::move(tokens));
  } catch (...) {
    rethrow_with_context(config_path);
  }
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra) const {
  NIBBLE_CHECK(messages.is_array(), "chat template: messages should be a JSON array, got {}", messages.type_name());
  NIBBLE_CHECK(extra.is_object() || extra.is_null(), "chat template: extra variables should be a JSON object");
  jinja::Dict vars;
  // As transformers passes them: tools and documents are always defined (None when absent).
  vars.set("messages", jinja::from_json(messages));
  vars.set("tools", jinja::Value::none());
  vars.set("documents", jinja::Value::none());
  vars.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  const std::pair<const char*, const std::string*> special[] = {{"bos_token", &tokens_.bos_token},
                                                                {"eos_token", &tokens_.eos_token},
                                                                {"unk_token", &tokens_.unk_token},
                                                                {"pad_token", &tokens_.pad_token}};
  for (const auto& [name, value] : special)
    if (!value->empty()) vars.set(name, jinja::Value::string(*value));
  if (extra.is_object())
    for (const auto& kv : extra.items()) vars.set(kv.key(), jinja::from_json(kv.value()));
  return template_->render(vars, limits_);
}

}  // namespace nibble
