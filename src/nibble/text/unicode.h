// UTF-8 and Unicode helpers the tokenizer needs: code point iteration, lossy decoding (the
// same U+FFFD substitution Rust's String::from_utf8_lossy makes), canonical normalization
// (NFC/NFD), and GPT-2's byte <-> character map for byte-level BPE.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace nibble::unicode {

// Decodes the code point at s[pos] and advances pos. The input is valid UTF-8 (it came from
// a std::string we checked or produced), so an invalid byte is returned as itself.
char32_t next_code_point(std::string_view s, size_t& pos);

// Number of bytes of the UTF-8 sequence that starts with this lead byte (1 for invalid bytes).
size_t utf8_length(unsigned char lead);

void append_utf8(std::string& out, char32_t cp);
std::string to_utf8(const std::u32string& cps);
std::u32string to_code_points(std::string_view s);

// True when s is well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

// Replaces each maximal invalid subsequence with U+FFFD, as Rust's from_utf8_lossy does.
std::string utf8_lossy(std::string_view bytes);

// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t cp);

std::string nfd(std::string_view s);
std::string nfc(std::string_view s);

// GPT-2's bytes_to_unicode: each byte as the UTF-8 of the character that stands for it.
const std::array<std::string, 256>& byte_to_char();
// The inverse: a code point to its byte, or -1 when the character stands for no byte.
int char_to_byte(char32_t cp);

}  // namespace nibble::unicode
