#include <gtest/gtest.h>

#include <functional>

#include "nibble/io/python_json.h"
#include "nibble/train/train_config.h"
#include "train_test_util.h"

namespace nibble {
namespace {

using Json = nlohmann::ordered_json;
using test::expect_error;

TrainConfig minimal() {
  TrainConfig c;
  c.model = "m";
  c.data = "d.jsonl";
  c.out = "o";
  return c;
}

TEST(TrainConfig, DefaultsAreTransformersAndPeftsWithQloraChoices) {
  TrainConfig c;
  EXPECT_EQ(c.learning_rate, 2e-4);
  EXPECT_EQ(c.max_grad_norm, 1.0);
  EXPECT_EQ(c.lr_scheduler_type, "linear");
  EXPECT_EQ(c.optim, "paged_adamw_32bit");
  EXPECT_EQ(c.r, 8);
  EXPECT_EQ(c.lora_alpha, 8.0);
  EXPECT_EQ(c.lora_dropout, 0.0);
  EXPECT_EQ(c.target_modules.kind, LoraModuleSelector::Kind::all_linear);
  EXPECT_EQ(c.adam_epsilon, 1e-8);
  EXPECT_EQ(c.seed, 42);
  EXPECT_EQ(c.max_steps, -1);
  EXPECT_TRUE(c.bnb_4bit_use_double_quant);
  EXPECT_NO_THROW(validate_train_config(minimal()));
}

TEST(TrainConfig, JsonRoundTripsEveryField) {
  TrainConfig c = minimal();
  c.eval_data = "e.jsonl";
  c.learning_rate = 1.2345678901234567e-5;
  c.num_train_epochs = 2.5;
  c.max_steps = 77;
  c.gradient_accumulation_steps = 4;
  c.max_grad_norm = 0.3;
  c.warmup_ratio = 0.03;
  c.lr_scheduler_type = "cosine";
  c.optim = "paged_adamw_8bit";
  c.r = 64;
  c.lora_alpha = 16;
  c.lora_dropout = 0.05;
  c.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, {"q_proj", "v_proj"}, {}};
  c.use_rslora = true;
  c.packing = false;
  c.device = "cpu";
  c.on_nonfinite = "skip";
  c.max_gpu_memory = "20GiB";
  const Json json = train_config_to_json(c);
  EXPECT_EQ(json.at("target_modules"), Json::parse(R"(["q_proj", "v_proj"])"));
  EXPECT_TRUE(json.at("bnb_4bit_use_double_quant").get<bool>());
  // Through text as training_args.json holds it, so float formatting is part of the round trip.
  const Json reread = Json::parse(python_json_dumps(json, 2));
  EXPECT_EQ(train_config_to_json(train_config_from_json(reread, "x.json")).dump(), json.dump());

  c.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::regex, {}, R"(.*\.(q|v)_proj)"};
  const Json regex_json = train_config_to_json(c);
  EXPECT_EQ(regex_json.at("target_modules"), R"(.*\.(q|v)_proj)");
  EXPECT_EQ(train_config_from_json(regex_json, "x").target_modules.kind, LoraModuleSelector::Kind::regex);
  EXPECT_EQ(train_config_from_json(Json{{"target_modules", "ALL-LINEAR"}}, "x").target_modules.kind,
            LoraModuleSelector::Kind::all_linear);
  // Empty text fields are written as null and read back as unset.
  EXPECT_TRUE(train_config_to_json(minimal()).at("eval_data").is_null());
  EXPECT_EQ(train_config_from_json(Json{{"eval_data", nullptr}}, "x").eval_data, "");
}

TEST(TrainConfig, UnknownKeyNamesFileAndKeyAndSuggestsTheClosest) {
  expect_error([] { train_config_from_json(Json{{"learning_rat", 1e-3}}, "train.json"); },
               {"train.json", "\"learning_rat\"", "did you mean \"learning_rate\""});
  expect_error([] { train_config_from_json(Json{{"lora_alpa", 16}}, "train.json"); }, {"\"lora_alpha\""});
  // Names from transformers / axolotl that are spelled differently here.
  expect_error([] { train_config_from_json(Json{{"output_dir", "x"}}, "t.json"); }, {"did you mean \"out\""});
  expect_error([] { train_config_from_json(Json{{"lora_r", 8}}, "t.json"); }, {"did you mean \"r\""});
}

TEST(TrainConfig, WrongTypeNamesKeyAndExpectedType) {
  expect_error([] { train_config_from_json(Json{{"learning_rate", "2e-4"}}, "t.json"); },
               {"t.json", "\"learning_rate\"", "a string", "expected a number"});
  expect_error([] { train_config_from_json(Json{{"r", 8.5}}, "t.json"); }, {"\"r\"", "expected an integer"});
  expect_error([] { train_config_from_json(Json{{"packing", 1}}, "t.json"); }, {"\"packing\"", "true or false"});
  expect_error([] { train_config_from_json(Json{{"target_modules", 5}}, "t.json"); },
               {"\"target_modules\"", "list of module names"});
  expect_error([] { train_config_from_json(Json{{"target_modules", Json::array({"q_proj", 1})}}, "t.json"); },
               {"\"target_modules\""});
  expect_error([] { train_config_from_json(Json{{"model", 3}}, "t.json"); }, {"\"model\"", "a string"});
  expect_error([] { train_config_from_json(Json::array(), "t.json"); }, {"t.json", "object"});
  // An integer is a fine number.
  EXPECT_EQ(train_config_from_json(Json{{"learning_rate", 1}}, "t").learning_rate, 1.0);
}

TEST(TrainConfig, LoadsAFileWithCommentsAndNamesABadOne) {
  test::ScratchDir dir;
  test::write_bytes(dir / "train.json", R"({
    // QLoRA paper settings
    "learning_rate": 0.0002, "r": 64, "lora_alpha": 16, "max_grad_norm": 0.3,
    "lr_scheduler_type": "constant", "target_modules": "all-linear"
  })");
  TrainConfig c = load_train_config(dir / "train.json");
  EXPECT_EQ(c.r, 64);
  EXPECT_EQ(c.max_grad_norm, 0.3);
  EXPECT_EQ(c.lr_scheduler_type, "constant");
  EXPECT_EQ(c.packing, true);  // untouched default
  test::write_bytes(dir / "bad.json", "{\"r\": 8,,}");
  expect_error([&] { load_train_config(dir / "bad.json"); }, {dir / "bad.json", "not valid JSON"});
  expect_error([&] { load_train_config(dir / "missing.json"); }, {dir / "missing.json"});
}

TEST(TrainConfig, ValidationNamesFieldFlagAndWhatIsAccepted) {
  struct Case {
    std::function<void(TrainConfig&)> change;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {[](TrainConfig& c) { c.model.clear(); }, {"model is not set", "--model"}},
      {[](TrainConfig& c) { c.learning_rate = 0; }, {"learning_rate", "--learning-rate", "> 0"}},
      {[](TrainConfig& c) { c.learning_rate = std::nan(""); }, {"learning_rate"}},
      {[](TrainConfig& c) { c.r = 0; }, {"r (--r)", "rank >= 1"}},
      {[](TrainConfig& c) { c.lora_dropout = 1.0; }, {"lora_dropout", "[0, 1)"}},
      {[](TrainConfig& c) { c.lora_alpha = -1; }, {"lora_alpha"}},
      {[](TrainConfig& c) { c.optim = "adam"; }, {"optim (--optim)", "'adam'", "paged_adamw_32bit"}},
      {[](TrainConfig& c) { c.lr_scheduler_type = "polynomial"; }, {"lr_scheduler_type", "cosine"}},
      {[](TrainConfig& c) { c.dataset_format = "csv"; }, {"dataset_format", "csv"}},
      {[](TrainConfig& c) { c.bnb_4bit_quant_type = "int4"; }, {"bnb_4bit_quant_type"}},
      {[](TrainConfig& c) { c.bnb_4bit_compute_dtype = "bf16"; }, {"bnb_4bit_compute_dtype", "bfloat16"}},
      {[](TrainConfig& c) { c.device = "tpu"; }, {"device (--device)"}},
      {[](TrainConfig& c) { c.on_nonfinite = "ignore"; }, {"on_nonfinite", "stop or skip"}},
      {[](TrainConfig& c) { c.max_gpu_memory = "24XB"; }, {"max_gpu_memory", "24XB"}},
      {[](TrainConfig& c) { c.max_steps = 0; }, {"max_steps", "-1"}},
      {[](TrainConfig& c) { c.num_train_epochs = 0; }, {"num_train_epochs"}},
      {[](TrainConfig& c) { c.warmup_ratio = 1.0; }, {"warmup_ratio"}},
      {[](TrainConfig& c) { c.per_device_train_batch_size = 0; }, {"per_device_train_batch_size"}},
      {[](TrainConfig& c) { c.gradient_accumulation_steps = 0; }, {"gradient_accumulation_steps"}},
      {[](TrainConfig& c) { c.adam_beta2 = 1.0; }, {"adam_beta2"}},
      {[](TrainConfig& c) { c.save_steps = 0; }, {"save_steps"}},
      {[](TrainConfig& c) { c.max_seq_length = 1; }, {"max_seq_length"}},
      {[](TrainConfig& c) { c.eval_split = 0.1, c.eval_data = "e.jsonl"; }, {"eval_data", "eval_split", "not both"}},
      {[](TrainConfig& c) { c.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, {}, {}}; },
       {"target_modules", "empty"}},
  };
  for (const Case& k : cases) {
    TrainConfig c = minimal();
    k.change(c);
    try {
      validate_train_config(c);
      ADD_FAILURE() << "accepted: " << k.fragments.front();
    } catch (const Error& e) {
      for (const std::string& f : k.fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
}

TEST(TrainConfig, MemorySizesInAcceleratesSpelling) {
  EXPECT_EQ(parse_memory_size("24GiB", "m"), int64_t{24} << 30);
  EXPECT_EQ(parse_memory_size("20GB", "m"), int64_t{20000000000});
  EXPECT_EQ(parse_memory_size("512 MiB", "m"), int64_t{512} << 20);
  EXPECT_EQ(parse_memory_size("1.5gib", "m"), int64_t{3} << 29);
  EXPECT_EQ(parse_memory_size("123456", "m"), 123456);
  expect_error([] { parse_memory_size("abc", "max_gpu_memory"); }, {"max_gpu_memory", "abc"});
  expect_error([] { parse_memory_size("0GiB", "m"); }, {"above 0"});
  expect_error([] { parse_memory_size("3 parsecs", "m"); }, {"unknown unit \"parsecs\""});
}

TEST(TrainConfig, ResolvedPiecesFollowTransformers) {
  TrainConfig c = minimal();
  c.num_train_epochs = 2.5;
  EXPECT_EQ(train_total_steps(c, 7), 18);  // ceil(17.5)
  c.max_steps = 5;
  EXPECT_EQ(train_total_steps(c, 7), 5);
  c.gradient_accumulation_steps = 3;
  EXPECT_EQ(train_batch_options(c).epochs, 15);  // enough epochs for 5 steps of 3 micro-batches
  c.max_steps = -1;
  EXPECT_EQ(train_batch_options(c).epochs, 3);
  c.warmup_ratio = 0.1;
  EXPECT_EQ(train_warmup_steps(c, 95), 10);  // ceil(9.5)
  c.warmup_steps = 4;
  EXPECT_EQ(train_warmup_steps(c, 95), 4);
  EXPECT_EQ(train_eval_steps(c), c.logging_steps);
  c.eval_steps = 50;
  EXPECT_EQ(train_eval_steps(c), 50);

  c.r = 16;
  c.lora_alpha = 32;
  c.use_rslora = true;
  LoraConfig lora = train_lora_config(c);
  EXPECT_EQ(lora.r, 16);
  EXPECT_EQ(lora.lora_alpha, 32.0);
  EXPECT_TRUE(lora.use_rslora);
  EXPECT_EQ(lora.target_modules.kind, LoraModuleSelector::Kind::all_linear);
  EXPECT_EQ(train_adamw_hyper(c).eps, 1e-8);
  EXPECT_EQ(train_compute_dtype(c), DType::bf16);
  EXPECT_EQ(train_dataset_options(c).format, DataFormat::detect);
  EXPECT_FALSE(train_max_gpu_memory(c).has_value());
  c.max_gpu_memory = "1GiB";
  EXPECT_EQ(*train_max_gpu_memory(c), int64_t{1} << 30);
}

}  // namespace
}  // namespace nibble
