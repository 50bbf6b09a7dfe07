#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "nibble/train/train_state.h"
#include "train_test_util.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using test::expect_error;

TrainState full_state() {
  TrainState s;
  s.global_step = 500;
  s.epoch = 1.2345678901234567;
  s.data_position = DataPosition{1, 37};
  s.seed = 1234;
  s.rng_offset = 18446744073709551000ull;
  s.tokens_seen = 987654321;
  s.lr_scheduler_type = "cosine";
  s.learning_rate = 2e-4;
  s.warmup_steps = 30;
  s.total_steps = 1000;
  s.last_loss = 1.0 / 3.0;
  s.fingerprint.fields = {{"model_files", "0123456789abcdef"}, {"learning_rate", 2e-4}, {"packing", true}};
  return s;
}

TEST(TrainState, RoundTripsThroughTheFileText) {
  test::ScratchDir dir;
  const TrainState s = full_state();
  test::write_bytes(dir / "trainer_state.json", train_state_text(s));
  const TrainState back = read_train_state(dir / "trainer_state.json");
  EXPECT_EQ(back.global_step, 500);
  EXPECT_EQ(std::memcmp(&back.epoch, &s.epoch, sizeof(double)), 0);
  EXPECT_EQ(back.data_position, (DataPosition{1, 37}));
  EXPECT_EQ(back.seed, 1234);
  EXPECT_EQ(back.rng_offset, 18446744073709551000ull);
  EXPECT_EQ(back.tokens_seen, 987654321);
  EXPECT_EQ(back.lr_scheduler_type, "cosine");
  EXPECT_EQ(back.learning_rate, 2e-4);
  EXPECT_EQ(back.warmup_steps, 30);
  EXPECT_EQ(back.total_steps, 1000);
  EXPECT_EQ(*back.last_loss, 1.0 / 3.0);
  EXPECT_FALSE(back.last_eval_loss.has_value());
  EXPECT_NO_THROW(check_resume_fingerprint(s.fingerprint, back.fingerprint, "x"));
  EXPECT_EQ(train_state_text(back), train_state_text(s));
}

TEST(TrainState, ErrorsNameTheFileAndTheKey) {
  const Json good = train_state_to_json(full_state());
  auto without = [&](const std::string& path) {
    Json j = good;
    const size_t dot = path.find('.');
    if (dot == std::string::npos) j.erase(path);
    else j[path.substr(0, dot)].erase(path.substr(dot + 1));
    return j;
  };
  expect_error([&] { train_state_from_json(without("global_step"), "ck/trainer_state.json"); },
               {"ck/trainer_state.json", "missing \"global_step\""});
  expect_error([&] { train_state_from_json(without("lr_scheduler.total_steps"), "f"); },
               {"missing \"lr_scheduler.total_steps\""});
  expect_error([&] { train_state_from_json(without("data_position.index"), "f"); }, {"\"data_position.index\""});
  Json wrong = good;
  wrong["epoch"] = "one";
  expect_error([&] { train_state_from_json(wrong, "f"); }, {"\"epoch\" is \"one\"", "a number"});
  wrong = good;
  wrong["global_step"] = 1.5;
  expect_error([&] { train_state_from_json(wrong, "f"); }, {"\"global_step\"", "an integer"});
  wrong = good;
  wrong["data_position"]["index"] = -1;
  expect_error([&] { train_state_from_json(wrong, "f"); }, {"f", "negative"});
  wrong = good;
  wrong["version"] = 2;
  expect_error([&] { train_state_from_json(wrong, "f"); }, {"version 2"});
  wrong = good;
  wrong["format"] = "transformers";
  expect_error([&] { train_state_from_json(wrong, "f"); }, {"\"format\""});
  test::ScratchDir dir;
  test::write_bytes(dir / "t.json", "{\"global_step\": ");
  expect_error([&] { read_train_state(dir / "t.json"); }, {dir / "t.json", "not valid JSON"});
}

// A model folder nibble would load: config.json and one safetensors file (8-byte header length,
// header, data).
void write_model(const std::string& dir, const std::string& header, const std::string& data) {
  fs::create_directories(dir);
  test::write_bytes(dir + "/config.json", "{\"model_type\": \"llama\"}");
  test::write_bytes(dir + "/model.safetensors", test::safetensors_bytes(header, data));
}

TEST(TrainState, FingerprintRefusesAResumeThatChangesTheRun) {
  test::ScratchDir dir;
  write_model(dir / "model", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "12345678");
  test::write_bytes(dir / "train.jsonl", "{\"text\": \"hello\"}\n");
  TrainConfig c;
  c.model = dir / "model";
  c.data = dir / "train.jsonl";
  c.out = dir / "out";
  const RunFingerprint saved = make_run_fingerprint(c);
  EXPECT_NO_THROW(check_resume_fingerprint(saved, make_run_fingerprint(c), "ck/trainer_state.json"));

  // Options that do not change the numbers may change.
  TrainConfig harmless = c;
  harmless.save_steps = 7;
  harmless.logging_steps = 1;
  harmless.device = "cpu";
  harmless.gradient_checkpointing = false;
  harmless.out = dir / "elsewhere";
  EXPECT_NO_THROW(check_resume_fingerprint(saved, make_run_fingerprint(harmless), "f"));

  TrainConfig changed = c;
  changed.learning_rate = 1e-4;
  expect_error([&] { check_resume_fingerprint(saved, make_run_fingerprint(changed), "ck/trainer_state.json"); },
               {"cannot resume from ck/trainer_state.json", "learning_rate was 0.0002", "is 0.0001 now"});
  changed = c;
  changed.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, {"q_proj"}, {}};
  expect_error([&] { check_resume_fingerprint(saved, make_run_fingerprint(changed), "f"); },
               {"target_modules was \"all-linear\""});

  // Same size, different bytes: the data changed.
  test::write_bytes(dir / "train.jsonl", "{\"text\": \"jello\"}\n");
  expect_error([&] { check_resume_fingerprint(saved, make_run_fingerprint(c), "f"); }, {"data_file", "training data"});
  test::write_bytes(dir / "train.jsonl", "{\"text\": \"hello\"}\n");

  // A moved (copied) model is the same model; a different header is not.
  write_model(dir / "copy", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "12345678");
  TrainConfig moved = c;
  moved.model = dir / "copy";
  EXPECT_NO_THROW(check_resume_fingerprint(saved, make_run_fingerprint(moved), "f"));
  write_model(dir / "other", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "1234");
  moved.model = dir / "other";
  expect_error([&] { check_resume_fingerprint(saved, make_run_fingerprint(moved), "f"); },
               {"model_files", "config.json or weights"});

  // A field only one side has (a checkpoint from another nibble version) is a difference too.
  RunFingerprint extra = saved;
  extra.fields.emplace_back("future_option", 1);
  expect_error([&] { check_resume_fingerprint(extra, saved, "f"); }, {"future_option was 1", "(absent)"});
  expect_error([&] { make_run_fingerprint(TrainConfig{}); }, {"model folder"});
}

TEST(TrainState, FileDigestIsSizeAndFnv1a) {
  test::ScratchDir dir;
  test::write_bytes(dir / "empty", "");
  test::write_bytes(dir / "a", "a");
  // FNV-1a 64 reference values: offset basis for "", and 0xaf63dc4c8601ec8c for "a".
  EXPECT_EQ(file_digest(dir / "empty"), "0:cbf29ce484222325");
  EXPECT_EQ(file_digest(dir / "a"), "1:af63dc4c8601ec8c");
  expect_error([&] { file_digest(dir / "missing"); }, {dir / "missing"});
}

}  // namespace
}  // namespace nibble
