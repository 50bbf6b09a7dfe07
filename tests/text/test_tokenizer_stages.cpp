// Single pipeline stages against HF: pre-tokenizer pieces and normalizer outputs for options the
// trained golden tokenizers do not reach (every Split behaviour, invert, Digits, Metaspace
// schemes, NFC/NFD on hard cases). Data: tests/golden/tokenizers/{pre_tokenizers,normalizers}.jsonl.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/text/normalizer.h"
#include "nibble/text/pre_tokenizer.h"
#include "nibble/text/unicode.h"

namespace nibble {
namespace {

const std::string kGoldenDir = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/tokenizers";

std::vector<nlohmann::json> read_rows(const std::string& file) {
  std::ifstream in(kGoldenDir + "/" + file);
  EXPECT_TRUE(in.good()) << file;
  std::string line;
  std::getline(in, line);  // header
  std::vector<nlohmann::json> rows;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(TokenizerStages, PreTokenizersMatchHuggingFace) {
  auto rows = read_rows("pre_tokenizers.jsonl");
  ASSERT_GT(rows.size(), 300u);
  size_t bad = 0;
  for (const auto& r : rows) {
    auto pre = pre_tokenizer_from_json(r["pre_tokenizer"], "golden");
    ASSERT_NE(pre, nullptr);
    auto pieces = pre->pre_tokenize(r["text"].get<std::string>());
    auto want = r["pieces"].get<std::vector<std::string>>();
    if (pieces != want && bad++ < 5)
      ADD_FAILURE() << r["pre_tokenizer"].dump() << " text=" << r["text"].dump()
                    << " got=" << nlohmann::json(pieces).dump() << " want=" << r["pieces"].dump();
  }
  EXPECT_EQ(bad, 0u);
}

TEST(TokenizerStages, NormalizersMatchHuggingFace) {
  auto rows = read_rows("normalizers.jsonl");
  ASSERT_GT(rows.size(), 100u);
  size_t bad = 0, changed = 0;
  for (const auto& r : rows) {
    auto norm = normalizer_from_json(r["normalizer"], "golden");
    ASSERT_NE(norm, nullptr);
    std::string got = norm->normalize(r["text"].get<std::string>());
    if (r["normalized"] != r["text"]) ++changed;
    if (got != r["normalized"].get<std::string>() && bad++ < 5)
      ADD_FAILURE() << r["normalizer"].dump() << " text=" << r["text"].dump()
                    << " got=" << nlohmann::json(got).dump() << " want=" << r["normalized"].dump();
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(changed, 30u);  // the cases must exercise real changes
}

TEST(TokenizerStages, Utf8LossyReplacesMaximalSubparts) {
  // Rust's from_utf8_lossy: one U+FFFD per maximal invalid subsequence.
  EXPECT_EQ(unicode::utf8_lossy("a\xE2\x82z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(unicode::utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(unicode::utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(unicode::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(unicode::utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

TEST(TokenizerStages, ByteLevelAlphabet) {
  const auto& table = unicode::byte_to_char();
  EXPECT_EQ(table[' '], "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(table['\n'], "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(table['A'], "A");
  for (int b = 0; b < 256; ++b) {
    size_t pos = 0;
    EXPECT_EQ(unicode::char_to_byte(unicode::next_code_point(table[b], pos)), b);
  }
  EXPECT_EQ(unicode::char_to_byte(U' '), -1);
}

}  // namespace
}  // namespace nibble
