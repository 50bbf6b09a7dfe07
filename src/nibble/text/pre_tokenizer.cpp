#include "nibble/text/pre_tokenizer.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer_json.h"
#include "nibble/text/tokenizer_regex.h"
#include "nibble/text/unicode.h"

namespace nibble {

namespace tj = tokenizer_json;

namespace {

// GPT-2's pattern, which ByteLevel applies itself when use_regex is true.
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior behavior_from_string(const std::string& s, const std::string& where) {
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}: unknown Split behavior \"{}\" (expected Removed, Isolated, MergedWithPrevious, "
       "MergedWithNext or Contiguous)",
       where, s);
}

struct Range {
  size_t start, end;
  bool flag;  // is_match before the behaviour is applied, "remove" after
};

// Splits `in` at the regex matches with HF's SplitDelimiterBehavior semantics, appending the
// non-empty pieces to `out`.
void split_with(const TokenizerRegex& pattern, SplitBehavior behavior, bool invert,
                const PreToken& in, std::vector<PreToken>& out) {
  const std::string& s = in.text;
  if (s.empty()) return;
  std::vector<Range> ranges;
  size_t prev = 0;
  for (auto [start, end] : pattern.find_all(s)) {
    if (prev != start) ranges.push_back({prev, start, invert});
    ranges.push_back({start, end, !invert});
    prev = end;
  }
  if (prev != s.size()) ranges.push_back({prev, s.size(), invert});

  std::vector<Range> pieces;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (auto r : ranges) pieces.push_back({r.start, r.end, false});
      break;
    case SplitBehavior::kRemoved:
      pieces = ranges;
      break;
    case SplitBehavior::kContiguous:
      for (auto r : ranges) {
        if (r.flag == previous_match && !pieces.empty())
          pieces.back().end = r.end;
        else
          pieces.push_back({r.start, r.end, false});
        previous_match = r.flag;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (auto r : ranges) {
        if (r.flag && !previous_match && !pieces.empty())
          pieces.back().end = r.end;
        else
          pieces.push_back({r.start, r.end, false});
        previous_match = r.flag;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        if (it->flag && !previous_match && !pieces.empty())
          pieces.back().start = it->start;
        else
          pieces.push_back({it->start, it->end, false});
        previous_match = it->flag;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  for (const auto& p : pieces) {
    if (p.flag || p.end == p.start) continue;
    out.push_back({s.substr(p.start, p.end - p.start), in.at_start && p.start == 0});
  }
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> stages)
      : stages_(std::move(stages)) {}
  void split(const PreToken& in, std::vector<PreToken>& out) const override {
    std::vector<PreToken> current{in}, next;
    for (const auto& stage : stages_) {
      next.clear();
      for (const auto& piece : current) stage->split(piece, next);
      std::swap(current, next);
    }
    for (auto& piece : current) out.push_back(std::move(piece));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(TokenizerRegex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void split(const PreToken& in, std::vector<PreToken>& out) const override {
    split_with(pattern_, behavior_, invert_, in, out);
  }

 private:
  TokenizerRegex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Digits: every numeric character (Rust char::is_numeric, i.e. \p{N}) on its own, or runs of
// them together.
class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual)
      : pattern_(R"(\p{N})", false, "Digits"),
        behavior_(individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous) {}
  void split(const PreToken& in, std::vector<PreToken>& out) const override {
    split_with(pattern_, behavior_, false, in, out);
  }

 private:
  TokenizerRegex pattern_;
  SplitBehavior behavior_;
};

// ByteLevel: optional leading space, optional GPT-2 regex split, then every byte mapped to its
// GPT-2 character.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<TokenizerRegex>(kGpt2Pattern, false, "ByteLevel")
                         : nullptr) {}
  void split(const PreToken& in, std::vector<PreToken>& out) const override {
    if (in.text.empty()) return;
    PreToken piece = in;
    if (add_prefix_space_ && piece.text[0] != ' ') piece.text.insert(0, " ");
    size_t first = out.size();
    if (regex_)
      split_with(*regex_, SplitBehavior::kIsolated, false, piece, out);
    else
      out.push_back(std::move(piece));
    const auto& table = unicode::byte_to_char();
    for (size_t i = first; i < out.size(); ++i) {
      std::string mapped;
      mapped.reserve(out[i].text.size() * 2);
      for (char c : out[i].text) mapped += table[static_cast<unsigned char>(c)];
      out[i].text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<TokenizerRegex> regex_;
};

enum class PrependScheme { kAlways, kNever, kFirst };

// Metaspace: spaces become the replacement character, which is prepended by the scheme and,
// with split, starts each piece.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)),
        scheme_(scheme),
        split_(split),
        space_(" ", true, "Metaspace"),
        marker_(replacement_, true, "Metaspace") {}
  void split(const PreToken& in, std::vector<PreToken>& out) const override {
    if (in.text.empty()) return;
    PreToken piece{space_.replace_all(in.text, replacement_), in.at_start};
    bool starts = piece.text.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (scheme_ == PrependScheme::kAlways ||
                    (scheme_ == PrependScheme::kFirst && piece.at_start)))
      piece.text.insert(0, replacement_);
    if (split_)
      split_with(marker_, SplitBehavior::kMergedWithNext, false, piece, out);
    else
      out.push_back(std::move(piece));
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  TokenizerRegex space_, marker_;
};

}  // namespace

std::vector<std::string> PreTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<PreToken> pieces;
  split(PreToken{std::string(text), true}, pieces);
  std::vector<std::string> out;
  for (auto& p : pieces) out.push_back(std::move(p.text));
  return out;
}

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& spec,
                                                      const std::string& where) {
  if (spec.is_null()) return nullptr;
  std::string type = tj::type_of(spec, where, "pre_tokenizer");
  std::string what = "pre_tokenizer " + type;
  if (type == "Sequence") {
    const auto& list = tj::field(spec, "pretokenizers", where, what);
    NIBBLE_CHECK(list.is_array(), "{}: {} \"pretokenizers\" is not an array", where, what);
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    for (const auto& s : list) {
      if (auto p = pre_tokenizer_from_json(s, where)) stages.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(stages));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(
        tj::pattern(tj::field(spec, "pattern", where, what), where, what),
        behavior_from_string(tj::string_field(spec, "behavior", where, what), where),
        tj::optional_field(spec, "invert", false, where, what));
  }
  if (type == "Digits")
    return std::make_unique<DigitsPreTokenizer>(
        tj::optional_field(spec, "individual_digits", false, where, what));
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(
        tj::optional_field(spec, "add_prefix_space", true, where, what),
        tj::optional_field(spec, "use_regex", true, where, what));
  if (type == "Metaspace") {
    std::string replacement = tj::string_field(spec, "replacement", where, what);
    NIBBLE_CHECK(unicode::to_code_points(replacement).size() == 1,
                 "{}: {} replacement \"{}\" must be exactly one character", where, what,
                 replacement);
    PrependScheme scheme;
    if (spec.contains("prepend_scheme")) {
      std::string s = tj::string_field(spec, "prepend_scheme", where, what);
      if (s == "always") scheme = PrependScheme::kAlways;
      else if (s == "never") scheme = PrependScheme::kNever;
      else if (s == "first") scheme = PrependScheme::kFirst;
      else fail("{}: {} prepend_scheme \"{}\" (expected always, never or first)", where, what, s);
    } else {
      // Files saved before prepend_scheme existed carry add_prefix_space instead.
      scheme = tj::optional_field(spec, "add_prefix_space", true, where, what)
                   ? PrependScheme::kAlways
                   : PrependScheme::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(
        replacement, scheme, tj::optional_field(spec, "split", true, where, what));
  }
  fail("{}: unsupported pre_tokenizer type \"{}\" (expected Sequence, Split, Digits, ByteLevel "
       "or Metaspace)",
       where, type);
}

}  // namespace nibble
