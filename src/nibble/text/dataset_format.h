// One JSONL line -> a checked record of one of the three formats (text, alpaca, chat). Every
// problem is a nibble::Error "where:line: what was wrong; expected ...".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "nibble/text/dataset.h"

namespace nibble {

struct DataRecord {
  DataFormat format = DataFormat::text;
  std::string text;                         // text
  std::string instruction, input, output;   // alpaca ("input" empty when absent or null)
  nlohmann::ordered_json messages;          // chat: a non-empty array of {role, content, ...}
};

// `forced` = DataFormat::detect picks the format from the keys present: "messages" -> chat,
// else "instruction" -> alpaca, else "text" -> text.
DataRecord parse_data_line(std::string_view line, DataFormat forced, const std::string& where,
                           int64_t line_no);

// The Stanford Alpaca prompt (the text before the response), with or without the input block.
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

}  // namespace nibble
