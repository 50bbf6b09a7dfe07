// Each line format on the golden tokenizers and chat templates: exact token ids (from Hugging Face
// `tokenizers` and jinja2 on the same files), loss masks, special tokens.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/dataset.h"
#include "nibble/text/tokenizer.h"

namespace nibble {
namespace {

const std::string kGolden = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden";

Tokenizer golden_tokenizer(const std::string& name) {
  return Tokenizer::load(kGolden + "/tokenizers/" + name);
}

ChatTemplate golden_template(const std::string& name, const std::string& bos,
                             const std::string& eos) {
  std::ifstream in(kGolden + "/chat_templates/" + name + ".jinja", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  ChatSpecialTokens tokens;
  tokens.bos_token = bos;
  tokens.eos_token = eos;
  return ChatTemplate::from_string(text.str(), tokens);
}

std::vector<int64_t> target_indices(const Example& e) {
  std::vector<int64_t> out;
  for (size_t j = 0; j < e.loss_mask.size(); ++j)
    if (e.loss_mask[j]) out.push_back(static_cast<int64_t>(j));
  return out;
}

std::string targets_text(const Tokenizer& tok, const Example& e) {
  std::vector<int32_t> ids;
  for (size_t j = 0; j < e.tokens.size(); ++j)
    if (e.loss_mask[j]) ids.push_back(e.tokens[j]);
  return tok.decode(ids);
}

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

const char* kChatLine =
    R"({"messages": [{"role": "user", "content": "What is the capital of France?"},)"
    R"( {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Spain?"},)"
    R"( {"role": "assistant", "content": "Madrid."}]})";

const char* kAlpacaLine = R"({"instruction": "Name a color.", "input": "", "output": "Blue."})";

TEST(DatasetFormats, TextHasBosFromTokenizerAndEos) {
  Tokenizer tok = golden_tokenizer("llama3");
  Dataset data = Dataset::from_jsonl(R"({"text": "Hello world"})", "t.jsonl", tok, nullptr, {});
  ASSERT_EQ(data.size(), 1);
  EXPECT_EQ(data.format(), DataFormat::text);
  // <|begin_of_text|> Hello world, then <|eot_id|> (this tokenizer's eos_token).
  EXPECT_EQ(data[0].tokens, (std::vector<int32_t>{0, 44, 73, 776, 1187, 2}));
  EXPECT_EQ(data[0].loss_mask, (std::vector<uint8_t>{0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(data[0].line, 1);
  EXPECT_EQ(data.stats().tokens, 6);
  EXPECT_EQ(data.stats().target_tokens, 5);
}

TEST(DatasetFormats, TextWithoutEosOption) {
  Tokenizer tok = golden_tokenizer("llama3");
  DatasetOptions options;
  options.add_eos = false;
  Dataset data = Dataset::from_jsonl(R"({"text": "Hello world"})", "t.jsonl", tok, nullptr, options);
  EXPECT_EQ(data[0].tokens, (std::vector<int32_t>{0, 44, 73, 776, 1187}));
}

struct AlpacaCase {
  const char* tokenizer;
  std::vector<int32_t> tail;  // the last tokens of encode(prompt + "Blue.", true), from HF
  int64_t prompt_tokens;      // len(encode(prompt, true))
  int64_t total_tokens;       // len(encode(prompt + "Blue.", true))
  int32_t eos;
  int64_t wrap_prefix;        // tokens the post-processor puts first (BOS)
};

TEST(DatasetFormats, AlpacaLossOnResponseAndEos) {
  const std::vector<AlpacaCase> cases = {
      {"llama3", {82, 318, 30, 203, 38, 337, 73, 18}, 100, 104, 2, 1},
      {"smollm2", {80, 316, 28, 201, 36, 333, 71, 16}, 99, 103, 2, 0},
      {"llama2", {486, 500, 281, 260, 69, 542, 300, 271}, 100, 104, 2, 1},
  };
  for (const AlpacaCase& c : cases) {
    SCOPED_TRACE(c.tokenizer);
    Tokenizer tok = golden_tokenizer(c.tokenizer);
    Dataset data = Dataset::from_jsonl(kAlpacaLine, "a.jsonl", tok, nullptr, {});
    ASSERT_EQ(data.size(), 1);
    EXPECT_EQ(data.format(), DataFormat::alpaca);
    const Example& e = data[0];
    ASSERT_EQ(static_cast<int64_t>(e.tokens.size()), c.total_tokens + 1);
    EXPECT_EQ(std::vector<int32_t>(e.tokens.end() - 9, e.tokens.end() - 1), c.tail);
    EXPECT_EQ(e.tokens.back(), c.eos);
    EXPECT_EQ(target_indices(e), range(c.prompt_tokens, c.total_tokens + 1));
    if (c.wrap_prefix) EXPECT_NE(e.tokens[1], e.tokens[0]);  // one BOS, not two

    DatasetOptions all;
    all.train_on_inputs = true;
    Dataset everything = Dataset::from_jsonl(kAlpacaLine, "a.jsonl", tok, nullptr, all);
    EXPECT_EQ(target_indices(everything[0]), range(c.wrap_prefix, c.total_tokens + 1));
  }
}

TEST(DatasetFormats, AlpacaWithInputUsesTheInputTemplate) {
  Tokenizer tok = golden_tokenizer("smollm2");
  Dataset data = Dataset::from_jsonl(
      R"({"instruction": "Translate.", "input": "bonjour", "output": "hello"})", "a.jsonl", tok,
      nullptr, {});
  const std::string text = tok.decode(data[0].tokens);
  EXPECT_NE(text.find("paired with an input"), std::string::npos);
  EXPECT_NE(text.find("### Input:\nbonjour\n\n### Response:\nhello<|im_end|>"), std::string::npos);
  EXPECT_EQ(targets_text(tok, data[0]), "hello<|im_end|>");
}

TEST(DatasetFormats, ChatLlama3AssistantTurnsOnlyNoDoubleBos) {
  Tokenizer tok = golden_tokenizer("llama3");
  ChatTemplate chat = golden_template("llama3_1_instruct", "<|begin_of_text|>", "<|eot_id|>");
  Dataset data = Dataset::from_jsonl(kChatLine, "c.jsonl", tok, &chat, {});
  ASSERT_EQ(data.size(), 1);
  EXPECT_EQ(data.format(), DataFormat::chat);
  // HF tokenizers on jinja2's render of the same template (encode with add_special_tokens=False).
  const std::vector<int32_t> expected = {
      0, 3, 87, 93, 87, 339, 81, 4, 203, 203, 39, 595, 88, 420, 225, 47, 553, 91, 317, 72, 342,
      225, 40, 69, 339, 30, 225, 40, 73, 401, 81, 723, 225, 895, 23, 203, 56, 83, 378, 93, 225,
      40, 69, 339, 30, 225, 22, 26, 225, 46, 89, 80, 225, 895, 24, 203, 203, 2, 3, 89, 87, 313,
      4, 203, 203, 59, 338, 88, 395, 87, 390, 394, 439, 520, 80, 516, 74, 225, 42, 289, 82, 401,
      35, 2, 3, 69, 87, 538, 87, 520, 82, 88, 4, 203, 203, 52, 1251, 87, 18, 2, 3, 89, 87, 313,
      4, 203, 203, 37, 82, 72, 225, 55, 472, 287, 35, 2, 3, 69, 87, 538, 87, 520, 82, 88, 4, 203,
      203, 49, 69, 72, 548, 72, 18, 2};
  EXPECT_EQ(data[0].tokens, expected);
  // The tokens overlapping each assistant content + <|eot_id|> (from HF offsets).
  std::vector<int64_t> targets = range(95, 100);
  for (int64_t i : range(127, 134)) targets.push_back(i);
  EXPECT_EQ(target_indices(data[0]), targets);
  EXPECT_EQ(targets_text(tok, data[0]), "Paris.<|eot_id|>Madrid.<|eot_id|>");
}

TEST(DatasetFormats, ChatSmolLM2EndOfTurnIsTargetNewlineIsNot) {
  Tokenizer tok = golden_tokenizer("smollm2");
  ChatTemplate chat = golden_template("smollm2_instruct", "<|im_start|>", "<|im_end|>");
  Dataset data = Dataset::from_jsonl(kChatLine, "c.jsonl", tok, &chat, {});
  const std::vector<int32_t> expected = {
      1, 85, 91, 85, 335, 79, 201, 59, 446, 391, 302, 391, 384, 701, 519, 78, 223, 35, 43, 391,
      85, 530, 85, 512, 80, 86, 1190, 290, 70, 223, 53, 527, 78, 46, 47, 14, 1043, 1282, 70, 381,
      91, 223, 42, 87, 73, 73, 415, 223, 40, 67, 396, 2, 201, 1, 87, 85, 311, 201, 57, 334, 86,
      390, 85, 385, 389, 432, 512, 78, 508, 72, 223, 40, 287, 80, 396, 33, 2, 201, 1, 67, 85, 530,
      85, 512, 80, 86, 201, 50, 1216, 85, 16, 2, 201, 1, 87, 85, 311, 201, 35, 80, 70, 223, 53,
      465, 285, 33, 2, 201, 1, 67, 85, 530, 85, 512, 80, 86, 201, 47, 67, 70, 540, 70, 16, 2, 201};
  EXPECT_EQ(data[0].tokens, expected);
  std::vector<int64_t> targets = range(87, 92);
  for (int64_t i : range(117, 124)) targets.push_back(i);
  EXPECT_EQ(target_indices(data[0]), targets);
  EXPECT_EQ(targets_text(tok, data[0]), "Paris.<|im_end|>Madrid.<|im_end|>");
}

TEST(DatasetFormats, ChatTrainOnInputsTargetsEverything) {
  Tokenizer tok = golden_tokenizer("smollm2");
  ChatTemplate chat = golden_template("smollm2_instruct", "<|im_start|>", "<|im_end|>");
  DatasetOptions options;
  options.train_on_inputs = true;
  Dataset data = Dataset::from_jsonl(kChatLine, "c.jsonl", tok, &chat, options);
  EXPECT_EQ(target_indices(data[0]), range(0, static_cast<int64_t>(data[0].tokens.size())));
}

TEST(DatasetFormats, ChatLlama2TemplateWritesTheOnlyBos) {
  Tokenizer tok = golden_tokenizer("llama2");
  ChatTemplate chat = golden_template("llama2_chat", "<s>", "</s>");
  Dataset data = Dataset::from_jsonl(kChatLine, "c.jsonl", tok, &chat, {});
  const auto& ids = data[0].tokens;
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], *tok.bos_id());
  EXPECT_NE(ids[1], *tok.bos_id());
  // Llama 2 writes " Paris. </s>" after [/INST]; the spaces belong to the answer's tokens.
  const std::string targets = targets_text(tok, data[0]);
  EXPECT_NE(targets.find("Paris."), std::string::npos);
  EXPECT_NE(targets.find("Madrid."), std::string::npos);
  EXPECT_EQ(targets.find("Spain"), std::string::npos);
  EXPECT_EQ(data[0].tokens.back(), *tok.eos_id());
  EXPECT_EQ(data[0].loss_mask.back(), 1);
}

TEST(DatasetFormats, ChatBosPrependedWhenTemplateLacksIt) {
  // SmolLM2's template writes no BOS; a tokenizer whose post-processor adds one still gets it.
  Tokenizer tok = golden_tokenizer("llama2");
  ChatTemplate chat = golden_template("smollm2_instruct", "<s>", "</s>");
  Dataset data = Dataset::from_jsonl(kChatLine, "c.jsonl", tok, &chat, {});
  EXPECT_EQ(data[0].tokens[0], *tok.bos_id());
  EXPECT_NE(data[0].tokens[1], *tok.bos_id());
  EXPECT_EQ(data[0].loss_mask[0], 0);
}

TEST(DatasetFormats, ChatWithoutAssistantTurnIsCountedAndDropped) {
  Tokenizer tok = golden_tokenizer("smollm2");
  ChatTemplate chat = golden_template("smollm2_instruct", "<|im_start|>", "<|im_end|>");
  const std::string jsonl = std::string(kChatLine) + "\n" +
                            R"({"messages": [{"role": "user", "content": "hi"}]})" + "\n";
  Dataset data = Dataset::from_jsonl(jsonl, "c.jsonl", tok, &chat, {});
  EXPECT_EQ(data.size(), 1);
  EXPECT_EQ(data.stats().lines, 2);
  EXPECT_EQ(data.stats().examples_without_targets, 1);
}

TEST(DatasetFormats, BlankLinesAreIgnoredAndLineNumbersKept) {
  Tokenizer tok = golden_tokenizer("llama3");
  Dataset data = Dataset::from_jsonl("\n{\"text\": \"a\"}\r\n  \n{\"text\": \"b\"}", "t.jsonl",
                                     tok, nullptr, {});
  ASSERT_EQ(data.size(), 2);
  EXPECT_EQ(data[0].line, 2);
  EXPECT_EQ(data[1].line, 4);
  EXPECT_EQ(data.stats().lines, 2);
}

TEST(DatasetFormats, TruncationCountsExamplesAndTokens) {
  Tokenizer tok = golden_tokenizer("llama3");
  const std::string jsonl = "{\"text\": \"Hello world\"}\n{\"text\": \"" +
                            std::string(40, 'x') + " " + std::string(40, 'y') + "\"}\n";
  DatasetOptions full_options;
  full_options.max_seq_length = 4096;
  const int64_t long_length =
      static_cast<int64_t>(Dataset::from_jsonl(jsonl, "t.jsonl", tok, nullptr, full_options)[1].tokens.size());
  ASSERT_GT(long_length, 6);

  DatasetOptions options;
  options.max_seq_length = 6;
  Dataset data = Dataset::from_jsonl(jsonl, "t.jsonl", tok, nullptr, options);
  EXPECT_EQ(data.stats().truncated_examples, 1);
  EXPECT_EQ(data.stats().truncated_tokens, long_length - 6);
  EXPECT_EQ(data[0].tokens.size(), 6u);  // exactly at the limit: not truncated
  EXPECT_EQ(data[1].tokens.size(), 6u);
  EXPECT_EQ(data[1].loss_mask.size(), 6u);
}

TEST(DatasetFormats, PromptPastMaxLengthLeavesNoTarget) {
  Tokenizer tok = golden_tokenizer("llama3");
  DatasetOptions options;
  options.max_seq_length = 20;  // the Alpaca prompt alone is 100 tokens
  const std::string jsonl = std::string(kAlpacaLine) + "\n" + kAlpacaLine + "\n";
  try {
    Dataset::from_jsonl(jsonl, "a.jsonl", tok, nullptr, options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl: no usable examples"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("2 had no target token"), std::string::npos) << e.what();
  }
}

TEST(DatasetFormats, FormatNames) {
  EXPECT_EQ(parse_data_format("auto"), DataFormat::detect);
  EXPECT_EQ(parse_data_format("completion"), DataFormat::text);
  EXPECT_EQ(parse_data_format("alpaca"), DataFormat::alpaca);
  EXPECT_EQ(parse_data_format("messages"), DataFormat::chat);
  EXPECT_STREQ(data_format_name(DataFormat::chat), "chat");
  EXPECT_THROW(parse_data_format("sharegpt"), Error);
}

}  // namespace
}  // namespace nibble
