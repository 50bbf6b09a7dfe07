// JSON text exactly as Python's json.dumps writes it, for files whose bytes other tools compare
// or hash: bitsandbytes' quant_state blob (json.dumps with default separators) and config.json
// (transformers: json.dumps(indent=2, sort_keys=True) + "\n").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace nibble {

// Python's repr(float): the shortest digits that round-trip, fixed notation for decimal exponents
// -4..15 ("0.050937652587890625", "6.0", "1000000000000000.0") and otherwise exponent notation
// with a signed exponent of at least two digits ("1e-05", "1e+16"). "nan", "inf", "-inf".
std::string python_float_repr(double value);

// json.dumps(value, indent=..., sort_keys=...) with ensure_ascii=True. indent < 0 is Python's
// indent=None: one line, ", " between items and ": " after keys. indent >= 0 puts each item on
// its own line; empty containers stay "[]" / "{}". Non-finite floats are NaN / Infinity, as
// Python writes them. Object keys keep their order unless sort_keys.
std::string python_json_dumps(const nlohmann::ordered_json& value, int indent = -1, bool sort_keys = false);

}  // namespace nibble
