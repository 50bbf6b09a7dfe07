#include <gtest/gtest.h>

#include "nibble/train/train_options.h"
#include "train_test_util.h"

namespace nibble {
namespace {

// Parses `args` as `nibble train ARGS` and resolves the config.
TrainConfig parse(std::vector<std::string> args) {
  CLI::App app{"train"};
  TrainCommandLine command_line(app);
  args.insert(args.begin(), "train");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return command_line.resolve();
}

const std::vector<std::string> kRequired = {"--model", "m", "--data", "d.jsonl", "--out", "o"};

std::vector<std::string> with_required(std::vector<std::string> args) {
  args.insert(args.end(), kRequired.begin(), kRequired.end());
  return args;
}

TEST(TrainOptions, FlagsSetTheFieldsTheyName) {
  TrainConfig c = parse(with_required({"--learning-rate", "1e-3", "--r", "16", "--lora-alpha", "32",
                                       "--no-packing", "--no-gradient-checkpointing", "--resume",
                                       "--target-modules", "q_proj,v_proj", "--max-gpu-memory", "20GiB",
                                       "--per-device-train-batch-size", "4", "--optim", "adamw"}));
  EXPECT_EQ(c.model, "m");
  EXPECT_EQ(c.learning_rate, 1e-3);
  EXPECT_EQ(c.r, 16);
  EXPECT_EQ(c.lora_alpha, 32.0);
  EXPECT_FALSE(c.packing);
  EXPECT_FALSE(c.gradient_checkpointing);
  EXPECT_TRUE(c.resume);
  EXPECT_EQ(c.target_modules.kind, LoraModuleSelector::Kind::names);
  EXPECT_EQ(c.target_modules.names, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.max_gpu_memory, "20GiB");
  EXPECT_EQ(c.per_device_train_batch_size, 4);
  EXPECT_EQ(parse(with_required({"--target-modules", "all-linear"})).target_modules.kind,
            LoraModuleSelector::Kind::all_linear);
}

TEST(TrainOptions, FlagsUseDashesOnly) {
  // One spelling, as the other nibble commands: the underscore form is the config-file key.
  EXPECT_THROW(parse(with_required({"--learning_rate", "1e-3"})), CLI::ParseError);
}

TEST(TrainOptions, FlagsOverrideTheConfigFileEvenAtTheirDefault) {
  test::ScratchDir dir;
  test::write_bytes(dir / "train.json", R"({"model": "from_file", "data": "f.jsonl", "out": "fo",
    "learning_rate": 0.001, "r": 16, "packing": false, "target_modules": ["q_proj"], "seed": 7})");
  // --learning-rate 2e-4 equals the built-in default, and must still beat the file's 1e-3.
  TrainConfig c = parse({"--config", dir / "train.json", "--learning-rate", "2e-4", "--r", "32", "--packing",
                         "--out", "cli_out"});
  EXPECT_EQ(c.model, "from_file");
  EXPECT_EQ(c.out, "cli_out");
  EXPECT_EQ(c.learning_rate, 2e-4);
  EXPECT_EQ(c.r, 32);
  EXPECT_TRUE(c.packing);
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.target_modules.names, (std::vector<std::string>{"q_proj"}));
  EXPECT_EQ(c.lora_alpha, 8.0);  // neither: the default
}

TEST(TrainOptions, ResolveValidatesTheMergedConfig) {
  test::expect_error([] { parse({"--data", "d", "--out", "o"}); }, {"model is not set", "--model"});
  test::expect_error([] { parse(with_required({"--lora-dropout", "1.5"})); }, {"lora_dropout", "--lora-dropout"});
  test::expect_error([] { parse(with_required({"--target-modules", "all-linear,q_proj"})); }, {"--target-modules"});
  test::ScratchDir dir;
  test::write_bytes(dir / "t.json", R"({"lora_dropot": 0.1})");
  test::expect_error([&] { parse(with_required({"--config", dir / "t.json"})); },
                     {dir / "t.json", "lora_dropot", "lora_dropout"});
}

}  // namespace
}  // namespace nibble
