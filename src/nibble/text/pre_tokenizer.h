// Pre-tokenizers of tokenizer.json: split normalized text into the pieces BPE runs on.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble {

// A piece of text and whether it begins at offset 0 of the original input (Metaspace's
// prepend_scheme "first" adds its marker only there).
struct PreToken {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits `in` and appends the non-empty pieces to `out`.
  virtual void split(const PreToken& in, std::vector<PreToken>& out) const = 0;

  // Convenience: the pieces of one whole text (at_start true).
  std::vector<std::string> pre_tokenize(std::string_view text) const;
};

// Builds a pre-tokenizer from its JSON object; null gives nullptr. Errors name `where`.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& spec,
                                                      const std::string& where);

}  // namespace nibble
