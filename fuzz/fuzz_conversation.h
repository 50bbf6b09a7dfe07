// The conversation every chat-template target renders: system, user, assistant, user, with and
// without the generation prompt, and a tools list so templates that branch on it get one.
//
// Renders run under smaller limits than the defaults so that each input stays fast; the limits
// are what is fuzzed (every loop and every large value must be bounded by one), not their size.
#pragma once

#include <nlohmann/json.hpp>

#include "nibble/text/chat_template.h"

namespace nibble::fuzz {

inline void render_conversation(ChatTemplate& chat) {
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi! What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And \u00e9t\u00e9 in Chinese? \u590f\u5929"}])");
  static const nlohmann::ordered_json extra = nlohmann::ordered_json::parse(R"({
    "tools": [{"type": "function", "function": {"name": "add", "description": "Adds.",
      "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}}],
    "date_string": "25 Nov 2026"})");
  chat.limits().max_loop_iterations = 10000;
  chat.limits().max_output_bytes = 1 << 20;
  chat.limits().max_work = 1 << 26;
  for (bool add_generation_prompt : {false, true}) (void)chat.render(messages, add_generation_prompt);
  (void)chat.render(messages, true, extra);
}

}  // namespace nibble::fuzz
