#include "nibble/text/chat_template.h"

#include <fstream>
#include <sstream>

#include "nibble/core/error.h"

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

}  // namespace

ChatTemplate::ChatTemplate(std::string source, ChatSpecialTokens tokens)
    : source_(std::move(source)), tokens_(std::move(tokens)) {
  template_ = std::make_shared<const jinja::Template>(source_);
}

ChatTemplate ChatTemplate::from_string(std::string source, ChatSpecialTokens tokens) {
  return ChatTemplate(std::move(source), std::move(tokens));
}

ChatTemplate ChatTemplate::load(const std::string& model_dir) {
  const std::string config_path = model_dir + "/tokenizer_config.json";
  std::string text;
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  if (read_file(config_path, text)) {
    try {
      config = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON: {}", config_path, e.what());
    }
  }
  ChatSpecialTokens tokens{token_text(config, "bos_token", config_path), token_text(config, "eos_token", config_path),
                           token_text(config, "unk_token", config_path), token_text(config, "pad_token", config_path)};
  std::string source;
  const std::string sidecar = model_dir + "/chat_template.jinja";
  if (read_file(sidecar, source)) {
    try {
      return ChatTemplate(std::move(source), std::move(tokens));
    } catch (...) {
      rethrow_with_context(sidecar);
    }
  }
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null())
    fail("{}: the model has no chat template (no chat_template.jinja and no \"chat_template\" in {})", model_dir,
         config_path);
  if (it->is_string()) {
    source = it->get<std::string>();
  } else if (it->is_array()) {
    bool found = false;
    for (const auto& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        source = entry["template"].get<std::string>();
        found = true;
      }
    }
    if (!found) fail("{}: \"chat_template\" is a list without a template named \"default\"", config_path);
  } else {
    fail("{}: \"chat_template\" should be a string or a list of {{name, template}}", config_path);
  }
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
