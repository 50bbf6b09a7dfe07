// JSON text exactly as Python's json.dumps writes it, for files whose bytes other tools compare
// or hash: bitsandbytes' quant_state blob (json.dumps with default separators) and config.json
// (transformers: json.dumps(indent=2, sort_keys=True) + "\n").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "nibble/core/python_text.h"  // python_float_repr

namespace nibble {

// json.dumps(value, indent=..., sort_keys=...) with ensure_ascii=True. indent < 0 is Python's
// indent=None: one line, ", " between items and ": " after keys. indent >= 0 puts each item on
// its own line; empty containers stay "[]" / "{}". Non-finite floats are NaN / Infinity, as
// Python writes them. Object keys keep their order unless sort_keys.
std::string python_json_dumps(const nlohmann::ordered_json& value, int indent = -1, bool sort_keys = false);

}  // namespace nibble
