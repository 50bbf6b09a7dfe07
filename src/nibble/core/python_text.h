// Text exactly as Python writes it, where other tools compare our bytes with Python's:
// repr(float) (bitsandbytes' quant_state JSON, chat templates) and json.dumps string literals
// (config.json, quant_state blobs, the chat-template `tojson` filter).
#pragma once

#include <string>
#include <string_view>

namespace nibble {

// Python's repr(float): the shortest digits that round-trip, fixed notation for decimal exponents
// -4..15 ("0.050937652587890625", "6.0", "1000000000000000.0") and otherwise exponent notation
// with a signed exponent of at least two digits ("1e-05", "1e+16"). "nan", "inf", "-inf".
std::string python_float_repr(double value);

// Appends `text` (UTF-8) as json.dumps writes a string: quotes, the short escapes \" \\ \n \r
// \t \b \f, other control characters as \u00XX; with ensure_ascii also every character outside
// 0x20..0x7e as \uXXXX (UTF-16 surrogate pairs above U+FFFF). Invalid UTF-8 throws nibble::Error.
void append_python_json_string(std::string& out, std::string_view text, bool ensure_ascii);

}  // namespace nibble
