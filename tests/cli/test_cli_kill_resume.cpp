// nibble train killed with SIGKILL at random moments, again and again, and resumed each time
// (issue 5: nothing finished is ever lost): the run that gets to the end in pieces writes the
// same adapter, byte for byte, and logs the same losses as the run that was never stopped; and
// after every kill the newest checkpoint is complete (the resume reads it whole).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/train/checkpoint_dir.h"
#include "nibble/train/metrics_log.h"
#include "tests/support/tiny_model.h"

namespace fs = std::filesystem;
using namespace nibble;

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<double> losses(const std::string& out) {
  std::vector<double> values;
  for (const auto& record : read_metrics_log(out + "/metrics.jsonl"))
    if (record.contains("loss")) values.push_back(record["loss"].get<double>());
  return values;
}

// Starts `nibble train ARGS`, quiet; returns the pid.
pid_t start_train(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string program = NIBBLE_CLI_PATH;
    argv.push_back(program.data());
    std::string train = "train";
    argv.push_back(train.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

TEST(CliKillResume, KilledAtRandomMomentsTheRunEndsAsIfNeverStopped) {
  nibble::testing::TempDir dir("nibble-kill");
  nibble::testing::TinyModelSpec spec;
  spec.hidden = 64;
  spec.intermediate = 128;
  spec.heads = 4;
  spec.kv_heads = 2;
  spec.vocab = 3000;
  spec.dtype = DType::f32;
  spec.stddev = 0.2f;
  nibble::testing::write_tiny_llama(dir / "model", spec);
  nibble::testing::write_tiny_tokenizer(dir / "model");
  {
    std::ofstream data(dir / "train.jsonl");
    for (int i = 0; i < 48; ++i)
      data << nlohmann::json({{"text", "Line " + std::to_string(i) + ": the cat says meow and the dog says woof."}})
                  .dump()
           << "\n";
  }
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"--model", dir / "model", "--data", dir / "train.jsonl", "--out", out,
                                    "--device", "cpu", "--bnb-4bit-compute-dtype", "float32", "--r", "8",
                                    "--learning-rate", "5e-3", "--per-device-train-batch-size", "2",
                                    "--max-seq-length", "32", "--no-packing", "--logging-steps", "1",
                                    "--save-steps", "2", "--save-total-limit", "2", "--lora-dropout", "0.1"};
  };

  const std::string whole = dir / "whole";
  int status = 0;
  waitpid(start_train(args(whole)), &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the uninterrupted run failed";

  const std::string pieces = dir / "pieces";
  std::mt19937_64 rng(2026);
  int kills = 0;
  for (int attempt = 0; attempt < 200; ++attempt) {
    std::vector<std::string> a = args(pieces);
    if (latest_checkpoint(pieces)) a.push_back("--resume");
    const pid_t pid = start_train(a);
    // Anywhere from the model load to well into the steps and saves; the window widens with the
    // attempts so that a slow (loaded) machine still gets past a save now and then.
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % (600 + 50 * attempt)));
    if (waitpid(pid, &status, WNOHANG) == pid) {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "attempt " << attempt << " failed by itself";
      break;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {  // it finished just before the kill
      ASSERT_EQ(WEXITSTATUS(status), 0) << "attempt " << attempt;
      break;
    }
    ++kills;
  }
  ASSERT_TRUE(fs::exists(pieces + "/adapter_model.safetensors")) << "never finished in 200 attempts";
  std::printf("the run finished after %d kills\n", kills);
  EXPECT_GT(kills, 2) << "the kills came too late to test anything";
  EXPECT_EQ(file_bytes(pieces + "/adapter_model.safetensors"), file_bytes(whole + "/adapter_model.safetensors"));
  EXPECT_EQ(losses(pieces), losses(whole));
}

}  // namespace
