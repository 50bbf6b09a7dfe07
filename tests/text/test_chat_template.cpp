// Every golden case of tests/golden/chat_templates/golden.jsonl (rendered by transformers) must
// render to the same text, or fail where transformers failed.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/chat_template.h"

namespace {

const std::string kDir = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/chat_templates";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

TEST(ChatTemplateGolden, EveryCaseMatchesTransformers) {
  std::ifstream in(kDir + "/golden.jsonl");
  ASSERT_TRUE(in) << "missing golden.jsonl; run tests/golden/make_chat_template_golden.py";
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  auto header = nlohmann::ordered_json::parse(line);
  ASSERT_TRUE(header.value("header", false));
  int cases = 0, errors = 0;
  while (std::getline(in, line)) {
    auto c = nlohmann::ordered_json::parse(line);
    std::string name = c["template"].get<std::string>() + "/" + c["case"].get<std::string>() +
                       (c["add_generation_prompt"].get<bool>() ? "+gen" : "");
    nibble::ChatSpecialTokens tokens;
    const auto& st = c["special_tokens"];
    tokens.bos_token = st.value("bos_token", "");
    tokens.eos_token = st.value("eos_token", "");
    tokens.unk_token = st.value("unk_token", "");
    tokens.pad_token = st.value("pad_token", "");
    auto tpl = nibble::ChatTemplate::from_string(read_text(kDir + "/" + c["template"].get<std::string>() + ".jinja"),
                                                 tokens);
    ++cases;
    if (c.contains("output")) {
      std::string got;
      try {
        got = tpl.render(c["messages"], c["add_generation_prompt"].get<bool>(), c["extra"]);
      } catch (const nibble::Error& e) {
        ADD_FAILURE() << name << ": unexpected error: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c["output"].get<std::string>()) << name;
    } else {
      ++errors;
      try {
        tpl.render(c["messages"], c["add_generation_prompt"].get<bool>(), c["extra"]);
        ADD_FAILURE() << name << ": rendered, but transformers failed with: " << c["error"];
      } catch (const nibble::Error& e) {
        // The template's own raise_exception message must come through word for word.
        if (c["error_type"] == "TemplateError")
          EXPECT_NE(std::string(e.what()).find(c["error"].get<std::string>()), std::string::npos)
              << name << ": " << e.what();
      }
    }
  }
  EXPECT_GE(cases, 100);
  EXPECT_GE(errors, 10);
}

TEST(ChatTemplateLoad, SidecarWinsAndTokensMayBeObjects) {
  std::string dir = ::testing::TempDir() + "/nibble_chat_template_load";
  std::string mk = "mkdir -p " + dir;
  ASSERT_EQ(std::system(mk.c_str()), 0);
  std::remove((dir + "/chat_template.jinja").c_str());
  {
    std::ofstream cfg(dir + "/tokenizer_config.json");
    cfg << R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
               "chat_template": [{"name": "tool_use", "template": "T"},
                                 {"name": "default", "template": "{{ bos_token }}D{{ eos_token }}"}]})";
  }
  auto t = nibble::ChatTemplate::load(dir);
  EXPECT_EQ(t.render(nlohmann::ordered_json::array(), false), "<s>D</s>");
  {
    std::ofstream side(dir + "/chat_template.jinja");
    side << "S{{ messages | length }}";
  }
  auto s = nibble::ChatTemplate::load(dir);
  EXPECT_EQ(s.render(nlohmann::ordered_json::array({{{"role", "user"}, {"content", "x"}}}), false), "S1");
}

TEST(ChatTemplateLoad, MissingTemplateIsAnError) {
  std::string dir = ::testing::TempDir() + "/nibble_chat_template_none";
  std::string mk = "mkdir -p " + dir;
  ASSERT_EQ(std::system(mk.c_str()), 0);
  {
    std::ofstream cfg(dir + "/tokenizer_config.json");
    cfg << R"({"eos_token": "</s>"})";
  }
  EXPECT_THROW(nibble::ChatTemplate::load(dir), nibble::Error);
}

TEST(ChatTemplate, SyntaxErrorNamesLineAndColumn) {
  try {
    nibble::ChatTemplate::from_string("ok\n{% if x %}\n{{ 1 + }}\n{% endif %}");
    FAIL() << "expected a syntax error";
  } catch (const nibble::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3, column"), std::string::npos) << e.what();
  }
}

// Inputs found by fuzz/fuzz_tokenizer_config (issue 5).
TEST(ChatTemplate, FromTokenizerConfigReadsWhatLoadReads) {
  auto t = nibble::ChatTemplate::from_tokenizer_config(
      R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>",
          "chat_template": [{"name": 7, "template": "N"}, {"template": "no name"},
                            {"name": "default", "template": "{{ bos_token }}D{{ eos_token }}"}]})",
      "m/tokenizer_config.json");
  EXPECT_EQ(t.render(nlohmann::ordered_json::array(), false), "<s>D</s>");
  // A "name" that is not a string used to escape as nlohmann::type_error instead of nibble::Error.
  for (const char* bad : {R"({"chat_template": [{"name": 7, "template": "N"}]})", R"([1, 2])",
                          R"({"chat_template": 5})", R"({"chat_template": "{{ x", "bos_token": 1})"}) {
    EXPECT_THROW(nibble::ChatTemplate::from_tokenizer_config(bad, "m/tokenizer_config.json"), nibble::Error) << bad;
  }
  std::string deep = R"({"chat_template": )" + std::string(200000, '[') + std::string(200000, ']') + "}";
  try {
    nibble::ChatTemplate::from_tokenizer_config(deep, "m/tokenizer_config.json");
    FAIL() << "expected an error";
  } catch (const nibble::Error& e) {
    EXPECT_NE(std::string(e.what()).find("deeper than 128 levels"), std::string::npos) << e.what();
  }
}

}  // namespace
