// A nesting bound for JSON read from outside input. nlohmann's parser does not recurse, but
// dump() (which error messages call) and our own walkers (normalizer sequences, chat-template
// data) do: a 200 KB file of "[[[[..." would overflow the stack. Hugging Face tokenizers
// (serde_json) refuses JSON nested deeper than 128 levels, and so do we.
// Header-only: the modules that parse JSON link nlohmann-json; core itself does not.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"

namespace nibble {

constexpr int kMaxJsonDepth = 128;

// The callback to pass to Json::parse (Json is nlohmann::json or nlohmann::ordered_json): it
// throws nibble::Error "<where>: JSON nested deeper than 128 levels" at the first container
// that goes past the bound, and keeps everything else.
template <typename Json>
typename Json::parser_callback_t json_depth_limit(const std::string& where) {
  return [where](int depth, typename Json::parse_event_t event, Json&) {
    using E = typename Json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= kMaxJsonDepth)
      fail("{}: JSON nested deeper than {} levels", where, kMaxJsonDepth);
    return true;
  };
}

}  // namespace nibble
