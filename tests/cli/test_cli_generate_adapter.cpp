// `nibble generate --adapter` as a user runs it: a no-op adapter changes nothing, a real one
// changes the text, and an adapter made for another model is refused naming the file and tensor.
#include <string>

#include <gtest/gtest.h>

#include "tests/cli/cli_adapter_util.h"
#include "tests/cli/cli_runner.h"

using namespace nibble;
using namespace nibble::testing;

namespace {

// Greedy, so the text is a function of the logits alone.
std::string generate_args(const std::string& model, const std::string& adapter) {
  std::string args = "generate --model " + model + " --device cpu --prompt 'The quick brown fox' --max-new-tokens 12";
  if (!adapter.empty()) args += " --adapter " + adapter;
  return args;
}

class CliGenerateAdapter : public ::testing::Test {
 protected:
  void SetUp() override { write_tiny_model_with_tokenizer(tmp_ / "model", DType::bf16); }
  TempDir tmp_;
};

}  // namespace

TEST_F(CliGenerateAdapter, ZeroBAdapterGivesTheSameText) {
  write_adapter(tmp_ / "model", tmp_ / "zero", LoraInit::kaiming, 3);
  CliResult base = run_nibble(generate_args(tmp_ / "model", ""));
  ASSERT_EQ(base.exit_code, 0) << base.output;
  ASSERT_FALSE(base.output.empty());
  CliResult adapted = run_nibble(generate_args(tmp_ / "model", tmp_ / "zero"));
  ASSERT_EQ(adapted.exit_code, 0) << adapted.output;
  EXPECT_EQ(adapted.output, base.output);
}

TEST_F(CliGenerateAdapter, NonZeroAdapterChangesTheText) {
  // B ~ U(-1/2, 1/2), A ~ U(-1/sqrt(96), 1/sqrt(96)), scaling 2: the update is of the order of
  // the weights (std 0.02), so the greedy continuation changes (checked on logits in
  // test_cli_eval's adapter case, where the loss must match an in-process forward).
  write_adapter(tmp_ / "model", tmp_ / "real", LoraInit::none, 3);
  CliResult base = run_nibble(generate_args(tmp_ / "model", ""));
  ASSERT_EQ(base.exit_code, 0) << base.output;
  CliResult adapted = run_nibble(generate_args(tmp_ / "model", tmp_ / "real"));
  ASSERT_EQ(adapted.exit_code, 0) << adapted.output;
  EXPECT_NE(adapted.output, base.output);
}

TEST_F(CliGenerateAdapter, AdapterOfAnotherShapeNamesFileAndTensor) {
  TinyModelSpec other;
  other.hidden = 64;
  other.heads = 2;
  write_tiny_llama(tmp_ / "other", other);
  write_adapter(tmp_ / "other", tmp_ / "wrong", LoraInit::none, 3);
  CliResult r = run_nibble(generate_args(tmp_ / "model", tmp_ / "wrong"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("adapter_model.safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("expected [4, 96]"), std::string::npos) << r.output;
}

TEST_F(CliGenerateAdapter, AdapterWithMoreLayersNamesTheExtraTensor) {
  TinyModelSpec deeper;
  deeper.layers = 3;
  write_tiny_llama(tmp_ / "deeper", deeper);
  write_adapter(tmp_ / "deeper", tmp_ / "deep", LoraInit::none, 3);
  CliResult r = run_nibble(generate_args(tmp_ / "model", tmp_ / "deep"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unexpected tensor base_model.model.model.layers.2."), std::string::npos) << r.output;
}

TEST_F(CliGenerateAdapter, MissingAdapterFolderNamesIt) {
  CliResult r = run_nibble(generate_args(tmp_ / "model", tmp_ / "nowhere"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(tmp_ / "nowhere"), std::string::npos) << r.output;
}
