// A small but complete byte-level BPE tokenizer.json (GPT-2's byte alphabet, a few merges, ChatML
// and Llama special tokens), built in code so the targets that need a tokenizer parse nothing
// large per run and can encode any UTF-8 text.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace nibble::fuzz {

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest for U+0100 onwards.
inline std::string byte_level_char(int byte) {
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int code = byte;
  if (!printable(byte)) {
    code = 256;
    for (int b = 0; b < byte; ++b)
      if (!printable(b)) ++code;
  }
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

// with_pre_tokenizer false leaves out the ByteLevel pre-tokenizer, whose regex costs about a
// millisecond to build: for targets that load a tokenizer per input but do not test encoding.
inline std::string tiny_tokenizer_json(bool with_pre_tokenizer = true) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(b)] = b;
  const char* merged[] = {"Ġt", "he", "Ġthe", "in", "Ġa"};
  int next_id = 256;
  for (const char* token : merged) vocab[token] = next_id++;
  nlohmann::json added = nlohmann::json::array();
  for (const char* token : {"<|im_start|>", "<|im_end|>", "<s>", "</s>"}) {
    added.push_back({{"id", next_id}, {"content", token}, {"special", true}, {"normalized", false},
                     {"lstrip", false}, {"rstrip", false}, {"single_word", false}});
    vocab[token] = next_id++;
  }
  nlohmann::json root = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", with_pre_tokenizer ? nlohmann::json{{"type", "ByteLevel"}, {"add_prefix_space", false},
                                                            {"use_regex", true}}
                                           : nlohmann::json()},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"Ġ t", "h e", "Ġt he", "i n", "Ġ a"}}}}};
  return root.dump();
}

// ChatML, as SmolLM2 and Qwen2 write it.
inline const char* tiny_chat_template() {
  return "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
         "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
         "{% endif %}";
}

}  // namespace nibble::fuzz
