// Bad input: every case is one nibble::Error naming file:line and what was expected, or, with
// skip_bad_lines, a count and a kept message.
#include <cstdio>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "nibble/core/error.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"
#include "nibble/text/tokenizer.h"

namespace nibble {
namespace {

const std::string kGolden = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden";
const std::string kGood = R"({"text": "fine"})";

const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::load(kGolden + "/tokenizers/smollm2");
  return tok;
}

const ChatTemplate& chat_template(const std::string& name = "smollm2_instruct") {
  static std::map<std::string, ChatTemplate> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    std::ifstream in(kGolden + "/chat_templates/" + name + ".jinja", std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    it = cache.emplace(name, ChatTemplate::from_string(text.str(), {"<s>", "</s>", "", ""})).first;
  }
  return it->second;
}

// The message of the error that loading `jsonl` throws ("" if none).
std::string error_of(const std::string& jsonl, DatasetOptions options = {},
                     const std::string& template_name = "smollm2_instruct") {
  try {
    Dataset::from_jsonl(jsonl, "train.jsonl", tokenizer(), &chat_template(template_name), options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct BadLine {
  const char* line;
  const char* expected;  // a part of the message after "train.jsonl:2: "
};

TEST(DatasetErrors, EachBadLineNamesFileLineAndExpectation) {
  const std::vector<BadLine> cases = {
      {R"({"text": "unterminated)", "not valid JSON"},
      {R"([1, 2])", "the line is an array; expected a JSON object"},
      {R"("just a string")", "expected a JSON object"},
      {R"({"prompt": "x", "completion": "y"})",
       R"(no known fields (keys found: "prompt", "completion"); expected "text")"},
      {R"({"text": 5})", R"("text" is a number; expected a string)"},
      {R"({"text": null})", R"("text" is a null; expected a string)"},
      {R"({"instruction": "x"})", R"(lacks "output")"},
      {R"({"instruction": 1, "output": "y"})", R"("instruction" is a number; expected a string)"},
      {R"({"instruction": "x", "input": ["a"], "output": "y"})",
       R"("input" is an array; expected a string (or no "input"))"},
      {R"({"messages": "hello"})", R"("messages" is a string; expected an array)"},
      {R"({"messages": []})", R"("messages" is empty; expected at least one message)"},
      {R"({"messages": ["hi"]})", R"(messages[0] is a string; expected an object)"},
      {R"({"messages": [{"content": "hi"}]})", R"(messages[0] has no "role"; expected a string "role")"},
      {R"({"messages": [{"role": "human", "content": "hi"}]})",
       R"(messages[0] has role "human"; expected system, user, assistant or tool)"},
      {R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]})",
       R"(messages[1] has no "content"; expected a string "content")"},
      {R"({"messages": [{"role": "user", "content": ["hi"]}]})",
       R"(messages[0] has an array "content"; expected a string "content")"},
  };
  for (const BadLine& c : cases) {
    SCOPED_TRACE(c.line);
    const std::string message = error_of(kGood + "\n" + c.line + "\n" + kGood + "\n");
    EXPECT_EQ(message.rfind("train.jsonl:2: ", 0), 0u) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

TEST(DatasetErrors, MixedFormatsAreRejected) {
  const std::string message =
      error_of(kGood + "\n" + R"({"instruction": "x", "output": "y"})" + "\n");
  EXPECT_NE(message.find("train.jsonl:2: this line is alpaca, but line 1 was text"), std::string::npos)
      << message;
}

TEST(DatasetErrors, ForcedFormatRequiresItsFields) {
  DatasetOptions options;
  options.format = DataFormat::chat;
  const std::string message = error_of(kGood, options);
  EXPECT_NE(message.find(R"(train.jsonl:1: chat line lacks "messages")"), std::string::npos)
      << message;
  options.format = DataFormat::alpaca;
  EXPECT_NE(error_of(kGood, options).find(R"(train.jsonl:1: an alpaca line lacks "instruction")"),
            std::string::npos);
}

TEST(DatasetErrors, ChatWithoutTemplate) {
  try {
    Dataset::from_jsonl(R"({"messages": [{"role": "user", "content": "hi"}]})", "train.jsonl",
                        tokenizer(), nullptr, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.jsonl:1: a chat line, but no chat template"),
              std::string::npos)
        << e.what();
  }
}

TEST(DatasetErrors, TemplateRaiseExceptionNamesTheLine) {
  // Llama 2's template insists on alternating user/assistant roles.
  const std::string line =
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})";
  const std::string message = error_of(line, {}, "llama2_chat");
  EXPECT_NE(message.find("train.jsonl:1: the chat template failed on this conversation"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("alternate"), std::string::npos) << message;
}

TEST(DatasetErrors, SkipBadLinesCountsAndKeepsMessages) {
  DatasetOptions options;
  options.skip_bad_lines = true;
  const std::string jsonl = kGood + "\nnot json\n" + R"({"text": 1})" + "\n" + kGood + "\n";
  Dataset data =
      Dataset::from_jsonl(jsonl, "train.jsonl", tokenizer(), &chat_template(), options);
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.stats().lines, 4);
  EXPECT_EQ(data.stats().bad_lines, 2);
  ASSERT_EQ(data.stats().bad_line_errors.size(), 2u);
  EXPECT_EQ(data.stats().bad_line_errors[0].rfind("train.jsonl:2: not valid JSON", 0), 0u);
  EXPECT_EQ(data.stats().bad_line_errors[1].rfind("train.jsonl:3: ", 0), 0u);
  EXPECT_EQ(data[1].line, 4);
}

TEST(DatasetErrors, EmptyFileAndNoUsableExamples) {
  EXPECT_NE(error_of("").find("train.jsonl: the file is empty"), std::string::npos);
  EXPECT_NE(error_of("\n  \n\n").find("train.jsonl: the file is empty"), std::string::npos);
  DatasetOptions options;
  options.skip_bad_lines = true;
  const std::string message = error_of("nope\n[]\n", options);
  EXPECT_NE(message.find("train.jsonl: no usable examples: of 2 lines, 2 were bad and skipped; "
                         "the first: train.jsonl:1: not valid JSON"),
            std::string::npos)
      << message;
}

TEST(DatasetErrors, LoadNamesThePath) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("nibble-dataset-" + std::to_string(getpid()) + ".jsonl"))
                               .string();
  {
    std::ofstream out(path, std::ios::binary);
    out << kGood << "\n{\"text\": [1]}\n";
  }
  try {
    Dataset::load(path, tokenizer(), nullptr, {});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ":2: \"text\" is an array", 0), 0u) << e.what();
  }
  std::remove(path.c_str());
  try {
    Dataset::load(path, tokenizer(), nullptr, {});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": cannot open"), std::string::npos) << e.what();
  }
}

TEST(DatasetErrors, BadOptions) {
  DatasetOptions options;
  options.max_seq_length = 1;
  EXPECT_NE(error_of(kGood, options).find("max_seq_length is 1; expected at least 2"),
            std::string::npos);
  Dataset data = Dataset::from_jsonl(kGood, "train.jsonl", tokenizer(), nullptr, {});
  BatchOptions batch;
  batch.batch_size = 0;
  EXPECT_THROW(BatchIterator(data, batch), Error);
}

// Inputs found by fuzz/fuzz_dataset_jsonl (issue 5): a number too large for a double escaped as
// nlohmann::out_of_range instead of nibble::Error; deep nesting would overflow the stack.
TEST(DatasetErrors, HugeNumbersAndDeepNestingNameTheLine) {
  std::string e = error_of(kGood + "\n" + R"({"text": 1e999})");
  EXPECT_NE(e.find("train.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
  e = error_of(R"({"messages": [{"role": "user", "content": )" + std::string(200000, '[') + std::string(200000, ']') +
               "}]}");
  EXPECT_NE(e.find("train.jsonl:1"), std::string::npos) << e;
  EXPECT_NE(e.find("deeper than 128 levels"), std::string::npos) << e;
}

}  // namespace
}  // namespace nibble
