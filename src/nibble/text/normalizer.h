// Normalizers of tokenizer.json: text -> text before pre-tokenization. Offsets are not
// tracked; nibble needs ids, not alignments.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace nibble {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds a normalizer from its JSON object; null gives nullptr. `where` names the file for
// errors (unsupported type, missing field, bad regex).
std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& spec,
                                                 const std::string& where);

}  // namespace nibble
