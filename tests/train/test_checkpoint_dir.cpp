#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "nibble/train/checkpoint_dir.h"
#include "train_test_util.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::read_bytes;

std::vector<std::string> sorted_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A checkpoint holding adapter.bin = `payload` and a state naming the step.
SavedCheckpoint save(const std::string& out, int64_t step, const std::string& payload, int64_t limit = 2) {
  return save_checkpoint(
      out, step, [&](CheckpointStaging& s) { s.write_file("adapter.bin", payload); },
      "{\"global_step\": " + std::to_string(step) + "}\n", limit);
}

TEST(CheckpointDir, Names) {
  EXPECT_EQ(checkpoint_dir_name(500), "checkpoint-500");
  EXPECT_EQ(parse_checkpoint_dir_name("checkpoint-500"), 500);
  EXPECT_EQ(parse_checkpoint_dir_name("checkpoint-0"), 0);
  for (const char* bad : {"checkpoint-", "checkpoint-0500", "checkpoint--1", "checkpoint-5a", "checkpoint-+5",
                          ".checkpoint-5.tmp-1", "checkpoint-99999999999999999999", "xcheckpoint-5"})
    EXPECT_FALSE(parse_checkpoint_dir_name(bad).has_value()) << bad;
}

TEST(CheckpointDir, KeepsTheLastNAndLeavesNothingElse) {
  test::ScratchDir dir;
  const std::string out = dir / "out";
  for (int64_t step : {100, 200, 300}) {
    SavedCheckpoint saved = save(out, step, "weights of " + std::to_string(step));
    EXPECT_EQ(saved.checkpoint.path, out + "/checkpoint-" + std::to_string(step));
    EXPECT_TRUE(saved.not_removed.empty());
  }
  EXPECT_EQ(sorted_entries(out), (std::vector<std::string>{"checkpoint-200", "checkpoint-300"}));
  EXPECT_EQ(read_bytes(out + "/checkpoint-300/adapter.bin"), "weights of 300");
  EXPECT_EQ(read_bytes(out + "/checkpoint-300/trainer_state.json"), "{\"global_step\": 300}\n");
  EXPECT_EQ(latest_checkpoint(out)->step, 300);
  ASSERT_EQ(list_checkpoints(out).size(), 2u);
  EXPECT_EQ(list_checkpoints(out)[0].step, 200);
  // 0 keeps everything.
  save(out, 400, "w", 0);
  EXPECT_EQ(list_checkpoints(out).size(), 3u);
}

TEST(CheckpointDir, FileNamesCannotLeaveTheCheckpoint) {
  test::ScratchDir dir;
  CheckpointStaging staging(dir / "out", 1);
  const std::vector<std::string> bad_names = {"../escape", "a/b", "..", ".", "", "/etc/passwd", std::string("a\0b", 3)};
  for (const std::string& bad : bad_names)
    expect_error([&] { staging.write_file(bad, "x"); }, {"checkpoint file name", "plain file name"});
  expect_error([&] { staging.file(kTrainerStateFile); }, {"written by the checkpoint commit"});
  EXPECT_EQ(sorted_entries(dir.path()), std::vector<std::string>{"out"});
  EXPECT_EQ(staging.file("optimizer.safetensors"), staging.dir() + "/optimizer.safetensors");
}

TEST(CheckpointDir, AFullDiskLeavesThePreviousCheckpointIntactAndSaysSo) {
  test::ScratchDir dir;
  const std::string out = dir / "out";
  save(out, 1, "good weights");
  const std::string big(64 * 1024, 'w');
  test::with_file_size_limit(16 * 1024, [&] {
    expect_error([&] { save(out, 2, big); },
                 {"saving checkpoint-2", "adapter.bin", out + "/checkpoint-1 is intact"});
  });
  EXPECT_EQ(sorted_entries(out), std::vector<std::string>{"checkpoint-1"});
  EXPECT_EQ(read_bytes(out + "/checkpoint-1/adapter.bin"), "good weights");
  EXPECT_EQ(latest_checkpoint(out)->step, 1);

  // The same when the caller's own writer throws, and when there was nothing before.
  const auto failing_writer = [](CheckpointStaging&) { throw Error("optimizer state is NaN"); };
  expect_error([&] { save_checkpoint(out, 3, failing_writer, "{}", 2); },
               {"optimizer state is NaN", "checkpoint-1 is intact"});
  test::with_file_size_limit(16 * 1024, [&] {
    expect_error([&] { save(dir / "fresh", 1, big); }, {"there is no earlier checkpoint"});
  });
  EXPECT_TRUE(sorted_entries(dir / "fresh").empty());
  EXPECT_EQ(sorted_entries(out), std::vector<std::string>{"checkpoint-1"});
}

TEST(CheckpointDir, AKilledSaveIsIgnoredAndCleanedUp) {
  test::ScratchDir dir;
  const std::string out = dir / "out";
  save(out, 1, "good");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Dies mid-save: files written, no marker, no rename, no destructor.
    CheckpointStaging staging(out, 2);
    staging.write_file("adapter.bin", "half");
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const std::string leftover = ".checkpoint-2.tmp-" + std::to_string(child);
  EXPECT_EQ(sorted_entries(out), (std::vector<std::string>{leftover, "checkpoint-1"}));
  EXPECT_EQ(list_checkpoints(out).size(), 1u);
  // A save in progress by a live process (pid 1 always runs) and an incomplete checkpoint folder
  // without its marker (someone else's) are left alone; trash and the dead save go.
  fs::create_directory(out + "/.checkpoint-7.tmp-1");
  fs::create_directory(out + "/.checkpoint-1.trash-1");
  fs::create_directory(out + "/checkpoint-9");
  test::write_bytes(out + "/checkpoint-9/adapter.bin", "no marker");
  fs::create_directory_symlink(out + "/checkpoint-1", out + "/checkpoint-10");
  EXPECT_EQ(latest_checkpoint(out)->step, 1);
  EXPECT_EQ(sorted_entries(out),
            (std::vector<std::string>{".checkpoint-7.tmp-1", "checkpoint-1", "checkpoint-10", "checkpoint-9"}));
  EXPECT_FALSE(latest_checkpoint(dir / "missing").has_value());
}

TEST(CheckpointDir, SavingAStepAgainReplacesItWhole) {
  test::ScratchDir dir;
  const std::string out = dir / "out";
  save(out, 5, "first");
  save(out, 5, "second");
  EXPECT_EQ(sorted_entries(out), std::vector<std::string>{"checkpoint-5"});
  EXPECT_EQ(read_bytes(out + "/checkpoint-5/adapter.bin"), "second");
}

TEST(CheckpointDir, WritersThatTakeAFolderWriteIntoTheStaging) {
  test::ScratchDir dir;
  const std::string out = dir / "out";
  save_checkpoint(
      out, 3,
      [](CheckpointStaging& s) {
        fs::create_directory(s.dir() + "/adapter");
        test::write_bytes(s.dir() + "/adapter/adapter_config.json", "{}");
        test::write_bytes(s.file("rng.bin"), "r");
      },
      "{}", 2);
  EXPECT_EQ(read_bytes(out + "/checkpoint-3/adapter/adapter_config.json"), "{}");
  EXPECT_EQ(read_bytes(out + "/checkpoint-3/rng.bin"), "r");
}

}  // namespace
}  // namespace nibble
