// Decoders of tokenizer.json: token strings -> text. Each stage maps a list of token strings to
// a new list (HF's decode_chain); the result is their concatenation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;

  std::string decode(std::vector<std::string> tokens) const;
};

// Builds a decoder from its JSON object; null gives nullptr. Errors name `where`.
std::unique_ptr<TokenDecoder> decoder_from_json(const nlohmann::json& spec, const std::string& where);

}  // namespace nibble
