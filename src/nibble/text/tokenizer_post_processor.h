// Post-processors of tokenizer.json, for single sequences: the special-token ids that go
// before and after the encoded text (TemplateProcessing, Bert/Roberta; ByteLevel adds none).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble {

struct SpecialTokenTemplate {
  std::vector<int32_t> prefix;  // ids before $A
  std::vector<int32_t> suffix;  // ids after $A
};

// Reads the single-sequence template from a post_processor object (null gives an empty
// template). Errors name `where`.
SpecialTokenTemplate post_processor_from_json(const nlohmann::json& spec, const std::string& where);

}  // namespace nibble
