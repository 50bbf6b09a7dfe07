#include "nibble/text/tokenizer_decoder.h"

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer_json.h"
#include "nibble/text/unicode.h"

namespace nibble {

namespace tj = tokenizer_json;

namespace {

class SequenceDecoder : public TokenDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<TokenDecoder>> stages)
      : stages_(std::move(stages)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& stage : stages_) tokens = stage->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<TokenDecoder>> stages_;
};

// ByteLevel: each token whose characters all stand for bytes becomes those bytes (others stay
// as their own UTF-8); the whole is then decoded lossily into one string.
class ByteLevelDecoder : public TokenDecoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes, mapped;
    for (const auto& token : tokens) {
      mapped.clear();
      bool all = true;
      for (size_t pos = 0; pos < token.size() && all;) {
        int b = unicode::char_to_byte(unicode::next_code_point(token, pos));
        if (b < 0) all = false;
        else mapped += static_cast<char>(b);
      }
      bytes += all ? mapped : token;
    }
    return {unicode::utf8_lossy(bytes)};
  }
};

class ReplaceDecoder : public TokenDecoder {
 public:
  ReplaceDecoder(TokenizerRegex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
    return tokens;
  }

 private:
  TokenizerRegex pattern_;
  std::string content_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ByteFallback: runs of "<0xNN>" tokens become the string they spell when it is valid UTF-8,
// otherwise one U+FFFD per byte.
class ByteFallbackDecoder : public TokenDecoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (count == 0) return;
      if (unicode::is_valid_utf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      count = 0;
    };
    for (auto& token : tokens) {
      int hi = -1, lo = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        hi = hex_value(token[3]);
        lo = hex_value(token[4]);
      }
      if (hi >= 0 && lo >= 0) {
        bytes += static_cast<char>(hi * 16 + lo);
        ++count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    return out;
  }
};

class FuseDecoder : public TokenDecoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

// Strip removes up to `start` leading and `stop` trailing copies of one character per token.
// HF keeps (byte length - cuts) characters after the leading cut, so a trailing cut only takes
// effect on ASCII tokens; we match that.
class StripDecoder : public TokenDecoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::u32string cps = unicode::to_code_points(t);
      size_t start_cut = 0, stop_cut = 0;
      while (start_cut < start_ && start_cut < cps.size() && cps[start_cut] == content_) ++start_cut;
      while (stop_cut < stop_ && stop_cut < cps.size() && cps[cps.size() - 1 - stop_cut] == content_)
        ++stop_cut;
      size_t keep = t.size() - start_cut - stop_cut;
      t = unicode::to_utf8(cps.substr(start_cut, keep));
    }
    return tokens;
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

// Metaspace: the replacement character becomes a space, except in the first token when a
// prefix was prepended at encode time, where HF drops every replacement character.
class MetaspaceDecoder : public TokenDecoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool drop_first)
      : replacement_(replacement), drop_first_(drop_first) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (size_t pos = 0; pos < tokens[i].size();) {
        char32_t cp = unicode::next_code_point(tokens[i], pos);
        if (cp == replacement_) {
          if (!(i == 0 && drop_first_)) out += ' ';
        } else {
          unicode::append_utf8(out, cp);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  char32_t replacement_;
  bool drop_first_;
};

char32_t single_char(const std::string& s, const std::string& where, const std::string& what) {
  std::u32string cps = unicode::to_code_points(s);
  NIBBLE_CHECK(cps.size() == 1, "{}: {} \"{}\" must be exactly one character", where, what, s);
  return cps[0];
}

}  // namespace

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  for (const auto& t : decode_chain(std::move(tokens))) out += t;
  return out;
}

std::unique_ptr<TokenDecoder> decoder_from_json(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  std::string type = tj::type_of(spec, where, "decoder");
  std::string what = "decoder " + type;
  if (type == "Sequence") {
    const auto& list = tj::field(spec, "decoders", where, what);
    NIBBLE_CHECK(list.is_array(), "{}: {} \"decoders\" is not an array", where, what);
    std::vector<std::unique_ptr<TokenDecoder>> stages;
    for (const auto& s : list) {
      if (auto d = decoder_from_json(s, where)) stages.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(stages));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(
        tj::pattern(tj::field(spec, "pattern", where, what), where, what),
        tj::string_field(spec, "content", where, what));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(
        single_char(tj::string_field(spec, "content", where, what), where, what + " content"),
        tj::optional_field<size_t>(spec, "start", 0, where, what),
        tj::optional_field<size_t>(spec, "stop", 0, where, what));
  if (type == "Metaspace") {
    char32_t replacement =
        single_char(tj::string_field(spec, "replacement", where, what), where, what + " replacement");
    bool drop_first;
    if (spec.contains("prepend_scheme"))
      drop_first = tj::string_field(spec, "prepend_scheme", where, what) != "never";
    else
      drop_first = tj::optional_field(spec, "add_prefix_space", true, where, what);
    return std::make_unique<MetaspaceDecoder>(replacement, drop_first);
  }
  fail("{}: unsupported decoder type \"{}\" (expected Sequence, ByteLevel, Replace, ByteFallback, "
       "Fuse, Strip or Metaspace)",
       where, type);
}

}  // namespace nibble
