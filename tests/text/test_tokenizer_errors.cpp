// Bad tokenizer files: each must raise nibble::Error naming the source and what was expected.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer.h"

namespace nibble {
namespace {

// A minimal valid byte-level tokenizer.json, edited by each case.
nlohmann::json minimal() {
  return nlohmann::json::parse(R"({
    "version": "1.0", "added_tokens": [{"id": 5, "content": "<s>", "special": true,
      "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4, "<s>": 5},
              "merges": ["a b", "Ġ ab"]}})");
}

// Expects an Error whose message contains every fragment.
void expect_error(const std::string& text, std::initializer_list<const char*> fragments) {
  try {
    Tokenizer::from_json_string(text, "bad/tokenizer.json");
    ADD_FAILURE() << "no error for " << text.substr(0, 200);
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad/tokenizer.json"), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg << " lacks " << f;
  }
}

TEST(TokenizerErrors, MinimalIsValid) {
  Tokenizer tok = Tokenizer::from_json_string(minimal().dump());
  EXPECT_EQ(tok.encode("ab ab", false), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(tok.encode("<s>ab"), (std::vector<int32_t>{5, 2}));
  EXPECT_EQ(tok.decode({2, 4, 5}), "ab ab<s>");
  EXPECT_EQ(tok.decode({2, 4, 5}, true), "ab ab");
}

TEST(TokenizerErrors, BadJson) { expect_error("{\"model\": ", {"bad JSON"}); }

TEST(TokenizerErrors, MissingModel) {
  auto j = minimal();
  j.erase("model");
  expect_error(j.dump(), {"no \"model\""});
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    auto j = minimal();
    j["model"]["type"] = type;
    expect_error(j.dump(), {"unsupported model type", type, "expected \"BPE\""});
  }
}

TEST(TokenizerErrors, MergeNamesUnknownToken) {
  auto j = minimal();
  j["model"]["merges"].push_back("a zz");
  expect_error(j.dump(), {"merges[2]", "\"zz\"", "not in model.vocab"});
  j = minimal();
  j["model"]["merges"][0] = "ab";
  expect_error(j.dump(), {"merges[0]", "two tokens"});
}

TEST(TokenizerErrors, BadRegex) {
  auto j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}+"}}},
                        {"behavior", "Isolated"}, {"invert", false}};
  expect_error(j.dump(), {"bad regex", "(\\p{L}+"});
}

TEST(TokenizerErrors, IdOutOfRange) {
  auto j = minimal();
  j["model"]["vocab"]["b"] = -3;
  expect_error(j.dump(), {"model.vocab[\"b\"]", "out of range"});
  j = minimal();
  j["added_tokens"][0]["id"] = 1ll << 40;
  expect_error(j.dump(), {"added_tokens[0]", "out of range"});
  j = minimal();
  j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [99], "tokens": ["<s>"]}}})");
  expect_error(j.dump(), {"post_processor id 99", "out of range"});
}

TEST(TokenizerErrors, UnsupportedStages) {
  auto j = minimal();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(j.dump(), {"unsupported normalizer type \"BertNormalizer\""});
  j = minimal();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j.dump(), {"unsupported decoder type \"WordPiece\""});
  j = minimal();
  j["model"]["unk_token"] = "<missing>";
  expect_error(j.dump(), {"unk_token \"<missing>\""});
}

TEST(TokenizerErrors, MissingFileAndBadText) {
  EXPECT_THROW(Tokenizer::load("/nonexistent/model"), Error);
  Tokenizer tok = Tokenizer::from_json_string(minimal().dump());
  EXPECT_THROW(tok.encode("a\xFF"), Error);
}

// Inputs found by fuzz/fuzz_tokenizer_json (issue 5).
TEST(TokenizerErrors, HugeNumberIsBadJson) {
  // nlohmann reports 1e999 as out_of_range, not parse_error; it escaped as a non-nibble error.
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 1e999}, "merges": []}})", {"bad JSON"});
}

TEST(TokenizerErrors, DeepNestingIsAnErrorNotAStackOverflow) {
  auto j = minimal();
  std::string text = j.dump();
  text.insert(text.rfind('}'), R"(, "truncation": )" + std::string(200000, '[') + std::string(200000, ']'));
  expect_error(text, {"deeper than 128 levels"});
}

TEST(TokenizerErrors, SparseIdsNeedNoTableAsLargeAsTheLargestId) {
  // One token at id 2^31 - 2 used to size an id table of 2^31 entries (16 GB).
  auto j = minimal();
  j["model"]["vocab"]["b"] = 2147483646;
  Tokenizer tok = Tokenizer::from_json_string(j.dump());
  EXPECT_EQ(tok.id_to_token(2147483646), std::optional<std::string>("b"));
  EXPECT_EQ(tok.id_to_token(1), std::nullopt);
  EXPECT_EQ(tok.decode({2147483646, 0}), "ba");
}

}  // namespace
}  // namespace nibble
