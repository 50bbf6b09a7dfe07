// `nibble memory` as a user runs it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/cli/cli_runner.h"
#include "tests/support/tiny_model.h"

using namespace nibble::testing;

TEST(CliMemory, PresetShowsTheDoubleQuantizationArithmetic) {
  CliResult r = run_nibble("memory --preset llama-65b");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("0.500 bits/param without DQ and 0.127 with it"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.373 bits/param saved: 3.02 GB"), std::string::npos) << r.output;
  for (const char* part : {"4-bit weights", "constants without DQ", "constants with DQ", "unquantized tensors",
                           "LoRA weights", "LoRA gradients", "optimizer states", "activations", "workspace"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part;
}

TEST(CliMemory, JsonTotalsAddUp) {
  CliResult r = run_nibble("memory --preset llama3-8b --seq-len 4096 --optim adamw --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json plan = nlohmann::json::parse(r.output);
  int64_t sum = 0;
  for (const auto& part : plan["parts"])
    if (part["on_gpu"].get<bool>()) sum += part["bytes"].get<int64_t>();
  EXPECT_EQ(sum, plan["gpu_total_bytes"].get<int64_t>());
  EXPECT_EQ(plan["paged_bytes"].get<int64_t>(), 0) << "plain adamw keeps its states on the GPU";
  EXPECT_EQ(plan["seq_len"], 4096);
}

TEST(CliMemory, ModelFolder) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  CliResult r = run_nibble("memory --model " + (tmp / "model") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json plan = nlohmann::json::parse(r.output);
  // 2 layers x (96x96 + 2 x 32x96 + 96x96 + 3 x 200x96)
  EXPECT_EQ(plan["quantized_params"].get<int64_t>(), 2 * (96 * 96 * 2 + 2 * 32 * 96 + 3 * 200 * 96));
}

TEST(CliMemory, BadArguments) {
  CliResult both = run_nibble("memory --preset 7b --model /nonexistent");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.output.find("exactly one of --model DIR or --preset NAME"), std::string::npos) << both.output;
  CliResult optim = run_nibble("memory --preset 7b --optim sgd");
  EXPECT_NE(optim.exit_code, 0);
  EXPECT_NE(optim.output.find("paged_adamw_8bit"), std::string::npos) << optim.output;
  CliResult missing = run_nibble("memory --model /nonexistent-folder");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("config.json"), std::string::npos) << missing.output;
}
