#include "nibble/text/normalizer.h"

#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer_json.h"
#include "nibble/text/unicode.h"

namespace nibble {

namespace tj = tokenizer_json;

namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> stages)
      : stages_(std::move(stages)) {}
  std::string normalize(std::string_view text) const override {
    std::string s(text);
    for (const auto& stage : stages_) s = stage->normalize(s);
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> stages_;
};

// Prepend leaves an empty string empty, as HF does (so empty segments stay empty).
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text) const override {
    return text.empty() ? std::string() : prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(TokenizerRegex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view text) const override {
    return pattern_.replace_all(text, content_);
  }

 private:
  TokenizerRegex pattern_;
  std::string content_;
};

class NfcNormalizer : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return unicode::nfc(text); }
};

class NfdNormalizer : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return unicode::nfd(text); }
};

// Strip removes White_Space characters from the chosen ends.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    std::u32string cps = unicode::to_code_points(text);
    size_t begin = 0, end = cps.size();
    if (left_)
      while (begin < end && unicode::is_whitespace(cps[begin])) ++begin;
    if (right_)
      while (end > begin && unicode::is_whitespace(cps[end - 1])) --end;
    return unicode::to_utf8(cps.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

// The ByteLevel normalizer maps every byte to its GPT-2 character.
class ByteLevelNormalizer : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    const auto& table = unicode::byte_to_char();
    std::string out;
    out.reserve(text.size() * 2);
    for (char c : text) out += table[static_cast<unsigned char>(c)];
    return out;
  }
};

}  // namespace

std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& spec,
                                                 const std::string& where) {
  if (spec.is_null()) return nullptr;
  std::string type = tj::type_of(spec, where, "normalizer");
  std::string what = "normalizer " + type;
  if (type == "Sequence") {
    const auto& list = tj::field(spec, "normalizers", where, what);
    NIBBLE_CHECK(list.is_array(), "{}: {} \"normalizers\" is not an array", where, what);
    std::vector<std::unique_ptr<Normalizer>> stages;
    for (const auto& s : list) {
      if (auto n = normalizer_from_json(s, where)) stages.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(stages));
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(tj::string_field(spec, "prepend", where, what));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(
        tj::pattern(tj::field(spec, "pattern", where, what), where, what),
        tj::string_field(spec, "content", where, what));
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(
        tj::optional_field(spec, "strip_left", true, where, what),
        tj::optional_field(spec, "strip_right", true, where, what));
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  fail("{}: unsupported normalizer type \"{}\" (expected Sequence, Prepend, Replace, NFC, NFD, "
       "Strip or ByteLevel)",
       where, type);
}

}  // namespace nibble
