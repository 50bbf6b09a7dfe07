// `nibble eval` as a user runs it: its loss against one computed here, example by example, through
// LlamaModel::forward (the inference path, not the packed training path eval uses) and a
// log-softmax written in this file.
//
// Bound: both run in fp32 on a fp32 model and differ only in the order they sum (packed
// attention vs the KV-cache path, BLAS blocking): the logits agree within 1e-4 x max |logit| (the
// bound of test_llama_golden's fp32 case, same argument: K <= 200-term dot products, a handful of
// them in series). Each token's cross-entropy logsumexp(z) - z[target] moves by at most
// 2 x max |dz|, and so does their mean: |loss - reference| <= 2e-4 x max |logit|.
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/backend/backend.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/model/llama.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/dataset.h"
#include "nibble/text/tokenizer.h"
#include "tests/cli/cli_adapter_util.h"
#include "tests/cli/cli_runner.h"

using namespace nibble;
using namespace nibble::testing;

namespace {

constexpr double kLogitBound = 1e-4;  // x max |logit|, fp32 summation order

const char* kTextLines =
    "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}\n"
    "{\"text\": \"Hello world! Numbers 12345 and symbols #$%, then more words to make it longer.\"}\n"
    "\n"
    "{\"text\": \"Short.\"}\n";

const char* kAlpacaLines =
    "{\"instruction\": \"Name a color.\", \"input\": \"\", \"output\": \"Blue.\"}\n"
    "{\"instruction\": \"Add the numbers.\", \"input\": \"2 and 3\", \"output\": \"The sum of two and three is "
    "five, which is written 5 in digits, and that is the whole answer to the question.\"}\n";

const char* kChatLines =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}, "
    "{\"role\": \"assistant\", \"content\": \"Paris.\"}, {\"role\": \"user\", \"content\": \"And Spain?\"}, "
    "{\"role\": \"assistant\", \"content\": \"Madrid.\"}]}\n"
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
    "\"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n";

struct ReferenceLoss {
  double loss_sum = 0.0;
  int64_t target_tokens = 0;
  int64_t examples = 0;
  int64_t truncated_examples = 0;
  double max_logit = 0.0;
  double loss() const { return loss_sum / static_cast<double>(target_tokens); }
};

// -log softmax(row)[target] in double.
double cross_entropy(const float* row, int64_t vocab, int32_t target) {
  double max = row[0];
  for (int64_t v = 1; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
  return max + std::log(sum) - row[target];
}

// Every example on its own through the inference forward, fp32 compute.
ReferenceLoss reference_loss(const std::string& model_dir, const std::string& adapter_dir,
                             const std::string& data_path, const DatasetOptions& options) {
  const Tokenizer tokenizer = Tokenizer::load(model_dir);
  const ChatTemplate chat = ChatTemplate::load(model_dir);
  const Dataset data = Dataset::load(data_path, tokenizer, &chat, options);
  std::unique_ptr<Backend> backend = make_cpu_backend();
  LlamaLoadOptions load;
  load.compute_dtype = DType::f32;
  LlamaModel model = LlamaModel::load(model_dir, *backend, load);
  if (!adapter_dir.empty())
    lora_attach(model, lora_load_peft(adapter_dir, model_shape_of(model.hyper(), model_dir)));
  const int64_t vocab = model.hyper().vocab;

  ReferenceLoss ref;
  ref.examples = data.size();
  ref.truncated_examples = data.stats().truncated_examples;
  for (const Example& e : data.examples()) {
    KvCache cache = model.make_cache(static_cast<int64_t>(e.tokens.size()));
    const Tensor logits = model.forward(e.tokens, cache);
    const float* z = logits.data_as<float>();
    for (int64_t i = 0; i < logits.numel(); ++i) ref.max_logit = std::max(ref.max_logit, std::fabs(double(z[i])));
    for (size_t j = 1; j < e.tokens.size(); ++j) {
      if (!e.loss_mask[j]) continue;
      ref.loss_sum += cross_entropy(z + (j - 1) * vocab, vocab, e.tokens[j]);
      ++ref.target_tokens;
    }
  }
  return ref;
}

nlohmann::json eval_json(const std::string& args) {
  CliResult r = run_nibble("eval --device cpu --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (r.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(r.output);
}

void expect_matches(const nlohmann::json& out, const ReferenceLoss& ref) {
  ASSERT_TRUE(out.contains("loss")) << out.dump();
  ASSERT_GT(ref.target_tokens, 0);
  ASSERT_GT(ref.max_logit, 0.0);
  EXPECT_EQ(out["target_tokens"].get<int64_t>(), ref.target_tokens);
  EXPECT_EQ(out["examples"].get<int64_t>(), ref.examples);
  EXPECT_EQ(out["truncated_examples"].get<int64_t>(), ref.truncated_examples);
  const double loss = out["loss"].get<double>();
  EXPECT_NEAR(loss, ref.loss(), 2 * kLogitBound * ref.max_logit) << "max |logit| " << ref.max_logit;
  ::testing::Test::RecordProperty("loss_abs_diff", ::testing::PrintToString(std::fabs(loss - ref.loss())));
  ::testing::Test::RecordProperty("loss_bound", ::testing::PrintToString(2 * kLogitBound * ref.max_logit));
  EXPECT_NEAR(out["perplexity"].get<double>(), std::exp(loss), 1e-12 * std::exp(loss));
}

class CliEval : public ::testing::Test {
 protected:
  void SetUp() override { write_tiny_model_with_tokenizer(tmp_ / "model", DType::f32); }

  std::string write_data(const std::string& name, const char* lines) {
    const std::string path = tmp_ / name;
    std::ofstream(path) << lines;
    return path;
  }

  TempDir tmp_;
};

}  // namespace

TEST_F(CliEval, TextLossMatchesAnIndependentForward) {
  const std::string data = write_data("text.jsonl", kTextLines);
  DatasetOptions options;
  options.max_seq_length = 64;
  const ReferenceLoss ref = reference_loss(tmp_ / "model", "", data, options);
  EXPECT_EQ(ref.examples, 3);
  // One row, then rows of two packed examples: the batch shape must not matter.
  for (const char* batching : {"--batch-size 1 --max-seq-length 64", "--batch-size 2 --max-seq-length 64"}) {
    SCOPED_TRACE(batching);
    expect_matches(eval_json("--model " + (tmp_ / "model") + " --data " + data + " " + batching), ref);
  }
}

TEST_F(CliEval, AlpacaWithAdapterAndTruncation) {
  write_adapter(tmp_ / "model", tmp_ / "adapter", LoraInit::none, 7);
  const std::string data = write_data("alpaca.jsonl", kAlpacaLines);
  DatasetOptions options;
  options.max_seq_length = 160;
  const ReferenceLoss ref = reference_loss(tmp_ / "model", tmp_ / "adapter", data, options);
  ASSERT_EQ(ref.truncated_examples, 1);
  const nlohmann::json out = eval_json("--model " + (tmp_ / "model") + " --adapter " + (tmp_ / "adapter") +
                                       " --data " + data + " --max-seq-length 160");
  expect_matches(out, ref);
  EXPECT_EQ(out["format"], "alpaca");
  // The adapter is real: without it the loss is another number.
  const ReferenceLoss base = reference_loss(tmp_ / "model", "", data, options);
  EXPECT_GT(std::fabs(base.loss() - ref.loss()), 100 * kLogitBound * ref.max_logit);
}

TEST_F(CliEval, ChatThroughTheModelsTemplate) {
  const std::string data = write_data("chat.jsonl", kChatLines);
  DatasetOptions options;
  options.max_seq_length = 256;
  const ReferenceLoss ref = reference_loss(tmp_ / "model", "", data, options);
  const nlohmann::json out =
      eval_json("--model " + (tmp_ / "model") + " --data " + data + " --max-seq-length 256 --batch-size 3");
  expect_matches(out, ref);
  EXPECT_EQ(out["format"], "chat");
}

TEST_F(CliEval, TrainOnInputsCountsPromptsToo) {
  const std::string data = write_data("alpaca.jsonl", kAlpacaLines);
  DatasetOptions options;
  options.train_on_inputs = true;
  const ReferenceLoss ref = reference_loss(tmp_ / "model", "", data, options);
  expect_matches(eval_json("--model " + (tmp_ / "model") + " --data " + data + " --train-on-inputs"), ref);
}

TEST_F(CliEval, PrintsLossAndPerplexity) {
  const std::string data = write_data("text.jsonl", kTextLines);
  CliResult r = run_nibble("eval --device cpu --model " + (tmp_ / "model") + " --data " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 examples (text format)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("perplexity "), std::string::npos) << r.output;
}

TEST_F(CliEval, ChatDataWithoutATemplateIsAnError) {
  TinyModelSpec spec;
  spec.vocab = 3000;
  write_tiny_llama(tmp_ / "bare", spec);
  std::ofstream(tmp_ / "bare/tokenizer.json") << std::ifstream(tmp_ / "model/tokenizer.json").rdbuf();
  const std::string data = write_data("chat.jsonl", kChatLines);
  CliResult r = run_nibble("eval --device cpu --model " + (tmp_ / "bare") + " --data " + data);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("chat template"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("chat.jsonl:1"), std::string::npos) << r.output;
}

TEST_F(CliEval, NothingToEvaluateIsAnError) {
  const std::string data = write_data("empty.jsonl", "\n\n");
  CliResult r = run_nibble("eval --device cpu --model " + (tmp_ / "model") + " --data " + data);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("empty.jsonl"), std::string::npos) << r.output;
}

TEST_F(CliEval, MissingDataFileIsNamed) {
  CliResult r = run_nibble("eval --device cpu --model " + (tmp_ / "model") + " --data " + (tmp_ / "none.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("none.jsonl"), std::string::npos) << r.output;
}
