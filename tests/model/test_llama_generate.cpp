// The generation loop on a tiny random model: it stops at any EOS id, at a stop string (the text
// cut before it, and never streamed), or after max_new_tokens; and the streamed pieces add up to
// the final text.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/backend/backend.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"
#include "tests/support/tiny_model.h"

using namespace nibble;

namespace {

class LlamaGenerate : public ::testing::Test {
 protected:
  void SetUp() override {
    nibble::testing::TinyModelSpec spec;
    spec.stddev = 0.2f;  // larger weights: less repetitive greedy text from a random model
    nibble::testing::write_tiny_llama(dir_.path(), spec);
    backend_ = make_cpu_backend();
    model_ = std::make_unique<LlamaModel>(LlamaModel::load(dir_.path(), *backend_));
    GenerateOptions o;
    o.max_new_tokens = 12;
    KvCache cache = model_->make_cache(16);
    free_run_ = generate(*model_, cache, prompt_, o).tokens;
    ASSERT_EQ(free_run_.size(), 12u);
  }

  // Each id decodes to "<id>", so text positions are easy to predict.
  static std::string decode(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += "<" + std::to_string(id) + ">";
    return s;
  }

  nibble::testing::TempDir dir_{"nibble-generate"};
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<int32_t> prompt_ = {1, 5, 9, 77};
  std::vector<int32_t> free_run_;
};

TEST_F(LlamaGenerate, StopsAtAnyEosId) {
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.eos_ids = {1000, free_run_[4]};
  KvCache cache = model_->make_cache(16);
  GenerateResult r = generate(*model_, cache, prompt_, o);
  EXPECT_EQ(r.reason, StopReason::eos);
  size_t first = 0;
  while (free_run_[first] != free_run_[4]) ++first;
  EXPECT_EQ(r.tokens, std::vector<int32_t>(free_run_.begin(), free_run_.begin() + first + 1));
}

TEST_F(LlamaGenerate, StopStringCutsTheTextAndIsNeverStreamed) {
  GenerateOptions o;
  o.max_new_tokens = 12;
  const std::string stop = "<" + std::to_string(free_run_[5]) + ">";
  o.stop_strings = {stop};
  std::string streamed;
  int tokens_seen = 0;
  GenerateCallbacks c;
  c.decode = decode;
  c.on_text = [&](std::string_view piece) { streamed += piece; };
  c.on_token = [&](int32_t) { ++tokens_seen; };
  KvCache cache = model_->make_cache(16);
  GenerateResult r = generate(*model_, cache, prompt_, o, c);
  EXPECT_EQ(r.reason, StopReason::stop_string);
  const std::string full = decode(free_run_);
  EXPECT_EQ(r.text, full.substr(0, full.find(stop)));
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(tokens_seen, static_cast<int>(r.tokens.size()));
}

TEST_F(LlamaGenerate, MaxNewTokensAndCacheRoom) {
  GenerateOptions o;
  o.max_new_tokens = 3;
  KvCache cache = model_->make_cache(16);
  GenerateResult r = generate(*model_, cache, prompt_, o);
  EXPECT_EQ(r.reason, StopReason::max_new_tokens);
  EXPECT_EQ(r.tokens, std::vector<int32_t>(free_run_.begin(), free_run_.begin() + 3));
  KvCache small = model_->make_cache(8);
  o.max_new_tokens = 5;  // 4 + 5 > 8
  EXPECT_THROW(generate(*model_, small, prompt_, o), Error);
}

}  // namespace
