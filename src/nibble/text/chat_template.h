// A model's chat template: renders a conversation to the prompt text exactly as Hugging Face
// transformers' apply_chat_template(messages, tokenize=False) does.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "nibble/text/jinja_template.h"

namespace nibble {

struct ChatSpecialTokens {
  // Empty means the tokenizer does not set the token; the template then sees it undefined.
  std::string bos_token, eos_token, unk_token, pad_token;
};

class ChatTemplate {
 public:
  // Reads model_dir/chat_template.jinja when present (it wins, as in transformers), else
  // tokenizer_config.json "chat_template" (a string, or a list of {name, template} from which
  // "default" is taken). Special tokens come from tokenizer_config.json.
  static ChatTemplate load(const std::string& model_dir);
  // load() when the folder has a template (chat_template.jinja, or a non-null "chat_template" in
  // tokenizer_config.json), nothing when it has none: data without chat lines needs none. An
  // unreadable tokenizer_config.json counts as having one, so that load() says what is wrong.
  static std::optional<ChatTemplate> load_if_present(const std::string& model_dir);
  // The template and special tokens of tokenizer_config.json's text, as load() reads them when
  // there is no chat_template.jinja; `where` names the file in errors.
  static ChatTemplate from_tokenizer_config(const std::string& config_text, const std::string& where);
  static ChatTemplate from_string(std::string source, ChatSpecialTokens tokens = {});

  // messages: [{"role": ..., "content": ...}, ...]. extra: more template variables (tools,
  // documents, date_string, ...). Use nlohmann::ordered_json to keep key order: tojson prints
  // keys in the order the template receives them, as Python does.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }
  const ChatSpecialTokens& special_tokens() const { return tokens_; }
  jinja::Limits& limits() { return limits_; }

 private:
  ChatTemplate(std::string source, ChatSpecialTokens tokens);

  std::string source_;
  ChatSpecialTokens tokens_;
  std::shared_ptr<const jinja::Template> template_;
  jinja::Limits limits_;
};

}  // namespace nibble
