// io/peft_adapter: adapter_config.json fields as PEFT 0.21 writes and reads them, and the folder
// writer. Golden files: tests/golden/lora/ (tests/golden/make_lora_golden.py, real PEFT).
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "nibble/io/peft_adapter.h"
#include "nibble/io/python_json.h"
#include "nibble/io/safetensors.h"

using namespace nibble;
using Json = nlohmann::ordered_json;

namespace {

const std::string kGolden = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/lora";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The message of the nibble::Error that `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

LoraConfig parse(const std::string& text) { return peft_config_from_json(Json::parse(text), "adapter_config.json"); }

}  // namespace

TEST(PeftAdapter, ReadsPeftsOwnConfig) {
  const std::string path = kGolden + "/adapter/adapter_config.json";
  const LoraConfig c = peft_config_from_json(Json::parse(read_text(path)), path);
  EXPECT_EQ(c.r, 4);
  EXPECT_EQ(c.lora_alpha, 8.0);
  EXPECT_EQ(c.lora_dropout, 0.05);
  EXPECT_FALSE(c.use_rslora);
  EXPECT_EQ(c.init_lora_weights, LoraInit::none);
  ASSERT_EQ(c.target_modules.kind, LoraModuleSelector::Kind::names);
  const std::set<std::string> names(c.target_modules.names.begin(), c.target_modules.names.end());
  const std::set<std::string> want(peft_block_linear_names().begin(), peft_block_linear_names().end());
  EXPECT_EQ(names, want);
  EXPECT_EQ(c.task_type, std::optional<std::string>("CAUSAL_LM"));

  const std::string rp_path = kGolden + "/adapter_rank_pattern/adapter_config.json";
  const LoraConfig rp = peft_config_from_json(Json::parse(read_text(rp_path)), rp_path);
  EXPECT_EQ(rp.target_modules.kind, LoraModuleSelector::Kind::regex);
  EXPECT_TRUE(rp.use_rslora);
  ASSERT_EQ(rp.rank_pattern.size(), 1u);
  EXPECT_EQ(rp.rank_pattern[0], (std::pair<std::string, int64_t>("k_proj", 2)));
  ASSERT_EQ(rp.alpha_pattern.size(), 1u);
  EXPECT_EQ(rp.alpha_pattern[0], (std::pair<std::string, double>("down_proj", 4.0)));
}

// Our writer, given what PEFT was given, writes PEFT's file: the same fields with the same values
// and the same bytes (json.dumps(indent=2, sort_keys=True)), apart from the version stamp.
TEST(PeftAdapter, WriterMatchesPeftsConfigFile) {
  for (const char* folder : {"adapter", "adapter_rank_pattern"}) {
    SCOPED_TRACE(folder);
    const std::string path = kGolden + "/" + folder + "/adapter_config.json";
    const std::string peft_text = read_text(path);
    const LoraConfig c = peft_config_from_json(Json::parse(peft_text), path);
    const Json ours = peft_config_to_json(c);
    Json peft = Json::parse(peft_text);
    std::set<std::string> our_keys, peft_keys;
    for (const auto& item : ours.items()) our_keys.insert(item.key());
    for (const auto& item : peft.items()) peft_keys.insert(item.key());
    EXPECT_EQ(our_keys, peft_keys);
    for (const auto& item : peft.items()) {
      if (item.key() == "peft_version") continue;
      EXPECT_EQ(ours.value(item.key(), Json()), item.value()) << item.key();
    }
    // Byte for byte once the version stamps agree.
    const std::regex version("\"peft_version\": \"[^\"]*\"");
    std::string written = python_json_dumps(ours, 2, true);
    EXPECT_EQ(std::regex_replace(written, version, "V"), std::regex_replace(peft_text, version, "V"));
  }
}

TEST(PeftAdapter, MinimalConfigTakesPeftDefaults) {
  const LoraConfig c = parse(R"({"peft_type": "LORA"})");
  EXPECT_EQ(c.r, 8);
  EXPECT_EQ(c.lora_alpha, 8.0);
  EXPECT_EQ(c.lora_dropout, 0.0);
  // null target_modules: PEFT's default for Llama.
  EXPECT_EQ(c.target_modules.names, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.init_lora_weights, LoraInit::kaiming);
}

TEST(PeftAdapter, TargetModulesForms) {
  EXPECT_EQ(parse(R"({"peft_type": "LORA", "target_modules": "ALL-LINEAR"})").target_modules.kind,
            LoraModuleSelector::Kind::all_linear);
  const LoraConfig regex = parse(R"({"peft_type": "LORA", "target_modules": ".*\\.q_proj"})");
  EXPECT_EQ(regex.target_modules.kind, LoraModuleSelector::Kind::regex);
  EXPECT_EQ(regex.target_modules.regex, ".*\\.q_proj");
  const LoraConfig layers = parse(
      R"({"peft_type": "LORA", "target_modules": ["q_proj"], "layers_to_transform": 1, "exclude_modules": ["x"]})");
  EXPECT_EQ(layers.layers_to_transform, (std::vector<int64_t>{1}));
  ASSERT_TRUE(layers.exclude_modules.has_value());
  EXPECT_EQ(layers.exclude_modules->names, (std::vector<std::string>{"x"}));
  EXPECT_EQ(parse(R"({"peft_type": "LORA", "init_lora_weights": "gaussian"})").init_lora_weights, LoraInit::gaussian);
  // all-linear is written expanded, as PEFT saves it.
  LoraConfig all;
  EXPECT_EQ(peft_config_to_json(all)["target_modules"], Json(peft_block_linear_names()));
}

TEST(PeftAdapter, UnsupportedFeaturesAreNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {R"("use_dora": true)", "use_dora"},
      {R"("lora_bias": true)", "lora_bias"},
      {R"("modules_to_save": ["lm_head"])", "modules_to_save"},
      {R"("fan_in_fan_out": true)", "fan_in_fan_out"},
      {R"("bias": "all")", "bias"},
      {R"("init_lora_weights": "pissa")", "init_lora_weights"},
      {R"("layer_replication": [[0, 1]])", "layer_replication"},
      {R"("layers_pattern": "blocks")", "layers_pattern"},
  };
  for (const auto& [field, name] : cases) {
    const std::string message = error_of([&] { parse(std::string(R"({"peft_type": "LORA", )") + field + "}"); });
    EXPECT_NE(message.find("adapter_config.json"), std::string::npos) << message;
    EXPECT_NE(message.find(name), std::string::npos) << message;
    EXPECT_NE(message.find("not supported"), std::string::npos) << message;
  }
  EXPECT_NE(error_of([] { parse(R"({"peft_type": "IA3"})"); }).find("not supported"), std::string::npos);
  EXPECT_NE(error_of([] { parse(R"({"r": 4})"); }).find("peft_type"), std::string::npos);
  EXPECT_NE(error_of([] { parse(R"({"peft_type": "LORA", "r": 0})"); }).find("positive integer"), std::string::npos);
  EXPECT_NE(error_of([] { parse(R"({"peft_type": "LORA", "target_modules": 3})"); }).find("target_modules"),
            std::string::npos);
  // Features left at their off values (as PEFT writes them) are fine.
  EXPECT_NO_THROW(parse(R"({"peft_type": "LORA", "use_dora": false, "modules_to_save": null, "bias": "none",
                            "layers_pattern": null, "loftq_config": {}, "use_bdlora": null})"));
}

TEST(PeftAdapter, WritesAndReadsAFolder) {
  nibble::test::ScratchDir dir;
  LoraConfig c;
  c.r = 2;
  c.lora_alpha = 16;
  c.lora_dropout = 0.1;
  c.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, {"q_proj", "v_proj"}, {}};
  c.rank_pattern = {{"v_proj", 1}};
  c.alpha_pattern = {{"q_proj", 2.5}};
  c.base_model_name_or_path = "meta-llama/Llama-2-7b-hf";
  Tensor a = Tensor::empty({2, 3}, DType::f32);
  for (int i = 0; i < 6; ++i) a.data_as<float>()[i] = 0.25f * i;
  const std::string name = peft_lora_tensor_name("model.layers.0.self_attn.q_proj", false);
  EXPECT_EQ(name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  write_peft_adapter(dir / "out", c, {{name, a}});

  const PeftAdapterFiles files = read_peft_adapter(dir / "out");
  EXPECT_EQ(files.config.r, 2);
  EXPECT_EQ(files.config.lora_alpha, 16.0);
  EXPECT_EQ(files.config.lora_dropout, 0.1);
  EXPECT_EQ(files.config.target_modules.names, c.target_modules.names);
  EXPECT_EQ(files.config.rank_pattern, c.rank_pattern);
  EXPECT_EQ(files.config.alpha_pattern, c.alpha_pattern);
  EXPECT_EQ(files.config.base_model_name_or_path, c.base_model_name_or_path);
  EXPECT_EQ(files.weights.metadata().at("format"), "pt");
  EXPECT_EQ(files.weights.dtype_name(name), "F32");
  EXPECT_EQ(files.weights.tensor(name).data_as<float>()[5], 1.25f);
  // PEFT's formatting: sorted keys, two-space indent, no trailing newline.
  const std::string text = read_text(dir / "out/adapter_config.json");
  EXPECT_EQ(text.rfind("{\n  \"alora_invocation_tokens\": null,\n  \"alpha_pattern\": {\n    \"q_proj\": 2.5\n  },", 0), 0u)
      << text;
  EXPECT_EQ(text.back(), '}');
  // Only the two files, no temporaries left behind.
  std::set<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir / "out")) entries.insert(e.path().filename().string());
  EXPECT_EQ(entries, std::set<std::string>({"adapter_config.json", "adapter_model.safetensors"}));
}

TEST(PeftAdapter, MissingFolderNamesTheFile) {
  const std::string message = error_of([] { read_peft_adapter("/nonexistent/adapter"); });
  EXPECT_NE(message.find("/nonexistent/adapter/adapter_config.json"), std::string::npos) << message;
}

// Input found by fuzz/fuzz_adapter_config (issue 5): the error message dumps the bad value, and
// dumping 200k nested arrays overflowed the stack.
TEST(PeftAdapter, DeeplyNestedValueIsAnErrorNotAStackOverflow) {
  nibble::test::ScratchDir dir;
  nibble::test::write_bytes(dir / "adapter_config.json",
                            R"({"peft_type": "LORA", "r": )" + nibble::test::nested_json_arrays(200000) + "}");
  const std::string message = error_of([&] { read_peft_adapter(dir.path()); });
  EXPECT_NE(message.find("deeper than 128 levels"), std::string::npos) << message;
}
