// run_training end to end on the CPU with a tiny random model: learning is real (held-out loss
// falls far below chance on a task the base cannot do), and the output folder holds an adapter
// that loads back.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/io/safetensors.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/train/checkpoint_dir.h"
#include "nibble/train/metrics_log.h"
#include "nibble/train/train_step.h"
#include "nibble/model/llama_checkpoint.h"
#include "nibble/train/trainer.h"
#include "tests/support/tiny_model.h"

using namespace nibble;

namespace {

// Alpaca lines: "What does the <animal> say?" plus filler words; the response names the sound.
// The fillers differ between the training and held-out files, so only the rule carries over.
void write_animal_data(const std::string& path, int examples, uint64_t seed) {
  const std::vector<std::pair<std::string, std::string>> animals = {
      {"cat", "meow"}, {"dog", "woof"}, {"cow", "moo"}, {"duck", "quack"}};
  const std::vector<std::string> words = {"red", "blue", "green", "small", "big", "happy", "old", "new",
                                          "fast", "slow", "bright", "dark", "warm", "cold", "soft", "loud"};
  std::mt19937_64 rng(seed);
  std::ofstream out(path);
  for (int i = 0; i < examples; ++i) {
    const auto& [animal, sound] = animals[rng() % animals.size()];
    std::string filler;
    for (int w = 0; w < 3; ++w) filler += " " + words[rng() % words.size()];
    nlohmann::json line = {{"instruction", "What does the " + animal + " say?"},
                           {"input", "Context:" + filler},
                           {"output", "The " + animal + " says " + sound + "."}};
    out << line.dump() << "\n";
  }
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nibble::testing::TinyModelSpec spec;
    spec.hidden = 64;
    spec.intermediate = 128;
    spec.heads = 4;
    spec.kv_heads = 2;
    spec.vocab = 3000;
    spec.dtype = DType::f32;
    // With N(0, 0.02) weights a unit-RMS hidden state reaches logits of at most ~1.3, too little
    // to predict anything; 0.2 lets the frozen lm_head express a confident answer.
    spec.stddev = 0.2f;
    nibble::testing::write_tiny_llama(dir_ / "model", spec);
    nibble::testing::write_tiny_tokenizer(dir_ / "model");
    write_animal_data(dir_ / "train.jsonl", 96, 1);
    write_animal_data(dir_ / "eval.jsonl", 24, 2);
    config_.model = dir_ / "model";
    config_.data = dir_ / "train.jsonl";
    config_.eval_data = dir_ / "eval.jsonl";
    config_.out = dir_ / "adapter";
    config_.device = "cpu";
    config_.bnb_4bit_compute_dtype = "float32";
    config_.learning_rate = 1e-2;
    config_.num_train_epochs = 3;
    config_.per_device_train_batch_size = 4;
    config_.r = 16;
    config_.lora_alpha = 16;
    config_.max_seq_length = 192;
    config_.logging_steps = 1000;
    config_.save_steps = 1000;
    config_.optim = "adamw";
  }

  nibble::testing::TempDir dir_{"nibble-trainer"};
  TrainConfig config_;
};

TEST_F(TrainerTest, HeldOutLossFallsFarBelowChance) {
  const TrainSummary s = run_training(config_);
  const double chance = std::log(3000.0);  // a uniform guess over the vocabulary
  ASSERT_TRUE(s.first_eval_loss && s.last_eval_loss);
  EXPECT_GT(*s.first_eval_loss, 0.8 * chance);  // the random base cannot do the task
  EXPECT_LT(*s.last_eval_loss, 0.1 * chance) << "first " << *s.first_eval_loss << ", steps " << s.steps;
  EXPECT_EQ(s.skipped_steps, 0);
  // The adapter written at the end loads back for the same model.
  const LoraAdapter adapter =
      lora_load_peft(config_.out, model_shape_of(read_llama_checkpoint(config_.model).hyper, config_.model));
  EXPECT_EQ(adapter.linears.size(), 14u);
}

// The bytes of a file, for bitwise comparisons.
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<double> logged(const std::string& metrics, const std::string& key, int64_t after_step) {
  std::vector<double> values;
  for (const auto& record : read_metrics_log(metrics)) {
    if (record.contains(key) && record["step"].get<int64_t>() > after_step) values.push_back(record[key].get<double>());
  }
  return values;
}

// A run resumed from a mid-run checkpoint (as a kill after that save leaves the folder) ends with
// the same adapter, bit for bit, and logs the same losses as the run that was never stopped.
TEST_F(TrainerTest, ResumeFromACheckpointIsBitwiseTheUninterruptedRun) {
  namespace fs = std::filesystem;
  config_.num_train_epochs = 1;
  config_.logging_steps = 1;
  config_.save_steps = 3;
  config_.eval_steps = 3;
  config_.save_total_limit = 0;
  config_.lora_dropout = 0.1;  // the dropout stream must continue where it stopped
  config_.gradient_accumulation_steps = 2;
  const TrainSummary whole = run_training(config_);
  ASSERT_GE(whole.steps, 7);

  TrainConfig resumed = config_;
  resumed.out = dir_ / "resumed";
  fs::create_directories(resumed.out);
  fs::copy(dir_ / "adapter/checkpoint-6", resumed.out + "/checkpoint-6", fs::copy_options::recursive);
  resumed.resume = true;
  const TrainSummary rest = run_training(resumed);
  EXPECT_EQ(rest.steps, whole.steps);
  EXPECT_EQ(file_bytes(resumed.out + "/adapter_model.safetensors"), file_bytes(config_.out + "/adapter_model.safetensors"));
  EXPECT_EQ(logged(resumed.out + "/metrics.jsonl", "loss", 6), logged(config_.out + "/metrics.jsonl", "loss", 6));
  EXPECT_EQ(logged(resumed.out + "/metrics.jsonl", "eval_loss", 6),
            logged(config_.out + "/metrics.jsonl", "eval_loss", 6));
  EXPECT_TRUE(fs::exists(resumed.out + "/loss.png"));
}

TEST_F(TrainerTest, AFreshRunRefusesAFolderWithCheckpoints) {
  config_.max_steps = 2;
  config_.save_steps = 1;
  run_training(config_);
  try {
    run_training(config_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
}

// A learning rate of 1e30 sends the adapter to values whose products overflow: the next loss is
// NaN. The run stops naming the step, and the checkpoint of the step before stays the last one.
TEST_F(TrainerTest, ANonFiniteLossStopsBeforeAnyCheckpointHoldsIt) {
  config_.learning_rate = 1e30;
  config_.max_steps = 6;
  config_.save_steps = 1;
  config_.save_total_limit = 0;
  config_.lr_scheduler_type = "constant";
  try {
    run_training(config_);
    FAIL() << "expected a NonFiniteError";
  } catch (const NonFiniteError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("not finite"), std::string::npos) << message;
    const auto checkpoints = list_checkpoints(config_.out);
    ASSERT_FALSE(checkpoints.empty());
    EXPECT_NE(message.find("step " + std::to_string(checkpoints.back().step + 1) + ":"), std::string::npos)
        << message;
  }
}

TEST_F(TrainerTest, SkippingNonFiniteStepsLeavesTheAdapterFinite) {
  config_.learning_rate = 1e30;
  config_.max_steps = 4;
  config_.lr_scheduler_type = "constant";
  config_.on_nonfinite = "skip";
  const TrainSummary s = run_training(config_);
  EXPECT_GT(s.skipped_steps, 0);
  const SafetensorsFile adapter = SafetensorsFile::open(config_.out + "/adapter_model.safetensors");
  for (const std::string& name : adapter.names()) {
    const Tensor t = adapter.tensor(name);
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_TRUE(std::isfinite(t.data_as<float>()[i])) << name;
  }
}

}  // namespace
