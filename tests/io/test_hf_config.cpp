#include <gtest/gtest.h>

#include "io_test_util.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/python_json.h"

namespace nibble {
namespace {

using Json = nlohmann::ordered_json;
using test::expect_error;

Json tiny_llama() {
  return Json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
    "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
    "vocab_size": 32000, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": null,
    "max_position_embeddings": 2048, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "bfloat16", "hidden_act": "silu"})");
}

TEST(HfConfig, Transformers4LlamaWithGqa) {
  ModelConfig c = parse_model_config(tiny_llama(), "config.json");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope.type, RopeType::default_rope);
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.dtype, DType::bf16);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_FALSE(c.quantization.has_value());
}

TEST(HfConfig, DefaultsWithoutGqaKeys) {
  Json j = tiny_llama();
  j.erase("num_key_value_heads");
  j.erase("rope_theta");
  j.erase("max_position_embeddings");
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 2048);
}

TEST(HfConfig, Llama3ScalingInBothForms) {
  Json v4 = tiny_llama();
  v4["rope_theta"] = 500000.0;
  v4["rope_scaling"] = Json::parse(R"({"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  v4["eos_token_id"] = Json::parse("[128001, 128008, 128009]");
  Json v5 = tiny_llama();
  v5.erase("rope_theta");
  v5.erase("rope_scaling");
  v5.erase("torch_dtype");
  v5["dtype"] = "float16";
  v5["rope_parameters"] = Json::parse(R"({"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  for (const Json& j : {v4, v5}) {
    ModelConfig c = parse_model_config(j, "config.json");
    EXPECT_EQ(c.rope.type, RopeType::llama3);
    EXPECT_EQ(c.rope.theta, 500000.0);
    EXPECT_EQ(c.rope.factor, 8.0);
    EXPECT_EQ(c.rope.low_freq_factor, 1.0);
    EXPECT_EQ(c.rope.high_freq_factor, 4.0);
    EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  }
  EXPECT_EQ(parse_model_config(v4, "c").eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(parse_model_config(v5, "c").dtype, DType::f16);

  Json linear = tiny_llama();
  linear["rope_scaling"] = Json::parse(R"({"rope_type": "linear", "factor": 4})");
  EXPECT_EQ(parse_model_config(linear, "c").rope.type, RopeType::linear);
  EXPECT_EQ(parse_model_config(linear, "c").rope.factor, 4.0);
  Json plain_v5 = tiny_llama();
  plain_v5["rope_parameters"] = Json::parse(R"({"rope_theta": 1000000.0, "rope_type": "default"})");
  EXPECT_EQ(parse_model_config(plain_v5, "c").rope.theta, 1e6);
}

TEST(HfConfig, Qwen2AndMistralDifferences) {
  Json q = tiny_llama();
  q["model_type"] = "qwen2";
  q["sliding_window"] = 4096;
  q["use_sliding_window"] = false;
  ModelConfig qc = parse_model_config(q, "c");
  EXPECT_TRUE(qc.qkv_bias);
  EXPECT_FALSE(qc.o_proj_bias);
  EXPECT_FALSE(qc.sliding_window.has_value());
  Json m = tiny_llama();
  m["model_type"] = "mistral";
  m["head_dim"] = 128;
  m["sliding_window"] = nullptr;
  ModelConfig mc = parse_model_config(m, "c");
  EXPECT_EQ(mc.head_dim, 128);
  EXPECT_FALSE(mc.sliding_window.has_value());
  m.erase("sliding_window");
  EXPECT_EQ(parse_model_config(m, "c").sliding_window, 4096);
}

TEST(HfConfig, BadInputNamesFileKeyAndExpectation) {
  auto with = [](const char* key, Json value) {
    Json j = tiny_llama();
    if (value.is_discarded()) j.erase(key);
    else j[key] = value;
    return j;
  };
  Json missing = Json(Json::value_t::discarded);
  expect_error([&] { parse_model_config(with("hidden_size", missing), "dir/config.json"); },
               {"dir/config.json", "missing key 'hidden_size'", "expected an integer"});
  expect_error([&] { parse_model_config(with("hidden_size", "2048"), "dir/config.json"); },
               {"dir/config.json", "'hidden_size'", "\"2048\"", "expected an integer"});
  expect_error([&] { parse_model_config(with("model_type", "gpt2"), "config.json"); },
               {"config.json", "'model_type'", "\"llama\", \"mistral\" or \"qwen2\""});
  expect_error([&] { parse_model_config(with("hidden_act", "gelu"), "config.json"); }, {"'hidden_act'", "\"silu\""});
  expect_error([&] { parse_model_config(with("num_key_value_heads", 5), "config.json"); },
               {"'num_key_value_heads'", "divisor"});
  expect_error([&] { parse_model_config(with("tie_word_embeddings", 1), "config.json"); },
               {"'tie_word_embeddings'", "true or false"});
  expect_error([&] { parse_model_config(with("rope_scaling", Json::parse(R"({"rope_type": "yarn", "factor": 4.0})")), "config.json"); },
               {"config.json", "'rope_scaling.rope_type'", "\"yarn\"", "not supported"});
  expect_error([&] { parse_model_config(with("rope_scaling", Json::parse(R"({"type": "dynamic", "factor": 2.0})")), "config.json"); },
               {"'rope_scaling.type'", "\"dynamic\""});
  expect_error([&] { parse_model_config(with("rope_parameters", Json::parse(R"({"rope_type": "llama3", "factor": 8.0})")), "config.json"); },
               {"missing key 'rope_parameters.low_freq_factor'"});
  expect_error([&] { parse_model_config(with("eos_token_id", "x"), "config.json"); }, {"'eos_token_id'", "list of integers"});

  test::ScratchDir dir;
  expect_error([&] { load_model_config(dir.path()); }, {dir.path() + "/config.json", "cannot open"});
  test::write_bytes(dir / "config.json", "{\"model_type\": ");
  expect_error([&] { load_model_config(dir.path()); }, {dir.path() + "/config.json", "not valid JSON"});
}

TEST(HfConfig, QuantizationBlockParsesAndRejectsOtherMethods) {
  Json j = tiny_llama();
  j["quantization_config"] = bnb_quantization_config_json(BnbQuantizationConfig{});
  ModelConfig c = parse_model_config(j, "c");
  ASSERT_TRUE(c.quantization.has_value());
  EXPECT_EQ(c.quantization->quant_type, QuantType::nf4);
  EXPECT_TRUE(c.quantization->double_quant);
  EXPECT_EQ(c.quantization->compute_dtype, DType::bf16);
  EXPECT_FALSE(c.quantization->skip_modules.has_value());

  // An older block: class defaults fill the gaps (fp4, no DQ, float32 compute).
  BnbQuantizationConfig old = parse_bnb_quantization_config(
      Json::parse(R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "llm_int8_skip_modules": ["lm_head"]})"), "c");
  EXPECT_EQ(old.quant_type, QuantType::fp4);
  EXPECT_FALSE(old.double_quant);
  EXPECT_EQ(old.compute_dtype, DType::f32);
  EXPECT_EQ(old.skip_modules, std::vector<std::string>{"lm_head"});

  expect_error([&] { parse_bnb_quantization_config(Json::parse(R"({"quant_method": "gptq"})"), "c/config.json"); },
               {"c/config.json", "'quantization_config.quant_method'", "\"bitsandbytes\""});
  expect_error([&] { parse_bnb_quantization_config(Json::parse(R"({"load_in_8bit": true})"), "c"); },
               {"'quantization_config.load_in_4bit'", "8-bit"});
}

TEST(HfConfig, QuantizationConfigJsonIsWhatTransformers517Writes) {
  std::string expected =
      R"({"_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "bfloat16", )"
      R"("bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, )"
      R"("llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": null, )"
      R"("llm_int8_threshold": 6.0, "load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes"})";
  EXPECT_EQ(python_json_dumps(bnb_quantization_config_json(BnbQuantizationConfig{})), expected);
}

TEST(HfConfig, SavedQuantizedConfigIsSortedIndentedAndReadsBack) {
  test::ScratchDir dir;
  Json original = Json::parse(R"({"vocab_size": 32000, "model_type": "llama", "rms_norm_eps": 1e-05, "a": []})");
  BnbQuantizationConfig q;
  q.skip_modules = std::vector<std::string>{"lm_head"};
  save_quantized_model_config(dir.path(), original, q);
  std::string text = test::read_bytes(dir / "config.json");
  EXPECT_EQ(text.rfind("{\n  \"a\": [],\n  \"model_type\": \"llama\",\n  \"quantization_config\": {\n"
                       "    \"_load_in_4bit\": true,\n", 0), 0u);
  EXPECT_NE(text.find("\"llm_int8_skip_modules\": [\n      \"lm_head\"\n    ],"), std::string::npos);
  EXPECT_NE(text.find("\"rms_norm_eps\": 1e-05,\n"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 3), "\n}\n");
  Json back = read_config_json(dir.path());
  EXPECT_EQ(parse_bnb_quantization_config(back["quantization_config"], "c").skip_modules, q.skip_modules);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"config.json"});
}

TEST(PythonJson, FloatReprMatchesPython) {
  EXPECT_EQ(python_float_repr(0.050937652587890625), "0.050937652587890625");
  EXPECT_EQ(python_float_repr(6.0), "6.0");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(123456.789), "123456.789");
  EXPECT_EQ(python_json_dumps(Json::parse(R"({"k": "\u00e9\ud83d\ude00\n"})")), R"({"k": "\u00e9\ud83d\ude00\n"})");
}

// Input found by fuzz/fuzz_hf_config (issue 5): the error message dumps the bad value, and
// dumping 200k nested arrays overflowed the stack.
TEST(HfConfig, DeeplyNestedValueIsAnErrorNotAStackOverflow) {
  test::ScratchDir dir;
  test::write_bytes(dir / "config.json", R"({"model_type": )" + test::nested_json_arrays(200000) + "}");
  expect_error([&] { load_model_config(dir.path()); }, {dir / "config.json", "deeper than 128 levels"});
}

}  // namespace
}  // namespace nibble
