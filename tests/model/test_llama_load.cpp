// Loading a Llama folder: the 4-bit paths (quantize-on-load and a bitsandbytes-layout folder) give
// exactly the numbers of a 16-bit model holding the dequantized weights, and bad folders fail
// with one error naming the tensor or key, the file and what was expected.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/backend/backend.h"
#include "nibble/io/bnb_checkpoint.h"
#include "nibble/io/safetensors.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"
#include "nibble/quant/quantize.h"
#include "nibble/text/tokenizer.h"
#include "tests/support/tiny_model.h"

using namespace nibble;
using nibble::testing::TempDir;
using nibble::testing::TinyModelSpec;
using nibble::testing::write_tiny_llama;

namespace {

bool is_block_linear(const std::string& name) {
  for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    if (name.find(std::string(p) + ".weight") != std::string::npos) return true;
  return false;
}

nlohmann::ordered_json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::ordered_json::parse(in);
}

void write_json(const std::string& path, const nlohmann::ordered_json& j) { std::ofstream(path) << j.dump(2); }

// Rewrites DIR/model.safetensors through `edit` (the tensor list as it was read).
template <typename Edit>
void edit_tensors(const std::string& dir, Edit edit) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  {
    SafetensorsModel model = SafetensorsModel::open(dir);
    for (const std::string& name : model.names()) tensors.emplace_back(name, model.tensor(name).to(Device::cpu));
  }
  edit(tensors);
  save_safetensors(dir + "/model.safetensors", tensors);
}

template <typename Edit>
void edit_config(const std::string& dir, Edit edit) {
  nlohmann::ordered_json j = read_json(dir + "/config.json");
  edit(j);
  write_json(dir + "/config.json", j);
}

std::vector<float> logits_of(const std::string& dir, const LlamaLoadOptions& options) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  LlamaModel model = LlamaModel::load(dir, *cpu, options);
  KvCache cache = model.make_cache(8);
  Tensor logits = model.forward({3, 17, 99, 5, 64, 2, 120}, cache);
  const float* p = logits.data_as<float>();
  return std::vector<float>(p, p + logits.numel());
}

std::string load_error(const std::string& dir) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  try {
    LlamaModel::load(dir, *cpu);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

class LlamaLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.dtype = DType::f32;
    write_tiny_llama(dir_.path(), spec_);
  }
  TinyModelSpec spec_;
  TempDir dir_{"nibble-llama"};
};

// The 4-bit paths against a plain model whose linears are the dequantized weights: on the CPU
// both run the same GEMM on the same values, so the logits are bitwise equal.
TEST_F(LlamaLoad, FourBitPathsEqualTheDequantizedModelExactly) {
  const QuantConfig config{QuantType::nf4, 64, true};
  TempDir dense("nibble-dense"), bnb("nibble-bnb");
  write_tiny_llama(dense.path(), spec_);
  write_tiny_llama(bnb.path(), spec_);
  edit_tensors(dense.path(), [&](auto& tensors) {
    for (auto& [name, t] : tensors)
      if (is_block_linear(name)) t = dequantize_4bit(quantize_4bit(t, config), DType::f32);
  });
  edit_tensors(bnb.path(), [&](auto& tensors) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (auto& [name, t] : tensors) {
      if (!is_block_linear(name)) {
        out.emplace_back(name, t);
        continue;
      }
      for (auto& piece : bnb_weight_tensors(name.substr(0, name.size() - 7), quantize_4bit(t, config)))
        out.push_back(std::move(piece));
    }
    tensors = std::move(out);
  });
  edit_config(bnb.path(), [](auto& j) {
    j["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true},
                                {"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", true},
                                {"bnb_4bit_compute_dtype", "bfloat16"}};
  });

  LlamaLoadOptions f32;
  f32.compute_dtype = DType::f32;
  std::vector<float> expected = logits_of(dense.path(), f32);
  LlamaLoadOptions on_load = f32;
  on_load.quantize = config;
  std::vector<float> quantized_on_load = logits_of(dir_.path(), on_load);
  std::vector<float> from_bnb_folder = logits_of(bnb.path(), f32);
  ASSERT_EQ(expected.size(), quantized_on_load.size());
  ASSERT_EQ(expected.size(), from_bnb_folder.size());
  EXPECT_EQ(0, std::memcmp(expected.data(), quantized_on_load.data(), expected.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(expected.data(), from_bnb_folder.data(), expected.size() * sizeof(float)));

  std::unique_ptr<Backend> cpu = make_cpu_backend();
  LlamaModel model = LlamaModel::load(bnb.path(), *cpu);
  EXPECT_TRUE(model.has_4bit_weights());
  EXPECT_EQ(model.compute_dtype(), DType::bf16);  // the default for 4-bit
}

TEST_F(LlamaLoad, DefaultComputeDtypeIsTheCheckpoints) {
  TempDir bf16("nibble-bf16");
  TinyModelSpec spec = spec_;
  spec.dtype = DType::bf16;
  write_tiny_llama(bf16.path(), spec);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  EXPECT_EQ(LlamaModel::load(bf16.path(), *cpu).compute_dtype(), DType::bf16);
  EXPECT_EQ(LlamaModel::load(dir_.path(), *cpu).compute_dtype(), DType::f32);
}

TEST_F(LlamaLoad, UnknownModelTypeNamesTheKey) {
  edit_config(dir_.path(), [](auto& j) { j["model_type"] = "gemma"; });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("model_type"), std::string::npos) << e;
  EXPECT_NE(e.find("\"llama\""), std::string::npos) << e;
}

TEST_F(LlamaLoad, UnknownArchitectureNamesTheExpectedClass) {
  edit_config(dir_.path(), [](auto& j) { j["architectures"] = {"LlamaForSequenceClassification"}; });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("LlamaForSequenceClassification"), std::string::npos) << e;
  EXPECT_NE(e.find("LlamaForCausalLM"), std::string::npos) << e;
}

TEST_F(LlamaLoad, MissingTensorNamesItAndItsShape) {
  edit_tensors(dir_.path(), [](auto& tensors) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }), tensors.end());
  });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("missing tensor model.layers.1.mlp.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[200, 96]"), std::string::npos) << e;
}

TEST_F(LlamaLoad, MisshapenTensorNamesTheFileAndTheExpectedShape) {
  edit_tensors(dir_.path(), [](auto& tensors) {
    for (auto& [name, t] : tensors)
      if (name == "model.layers.0.self_attn.k_proj.weight") t = Tensor::zeros({64, 96}, DType::f32);
  });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 96]"), std::string::npos) << e;
  EXPECT_NE(e.find("expected [32, 96]"), std::string::npos) << e;
}

TEST_F(LlamaLoad, WrongDtypeNamesTheTensor) {
  edit_tensors(dir_.path(), [](auto& tensors) {
    for (auto& [name, t] : tensors)
      if (name == "model.norm.weight") t = Tensor::zeros({96}, DType::i32);
  });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("model.norm.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("expected F32, F16 or BF16"), std::string::npos) << e;
}

TEST_F(LlamaLoad, MissingLmHeadWhenUntied) {
  edit_tensors(dir_.path(), [](auto& tensors) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const auto& p) { return p.first == "lm_head.weight"; }), tensors.end());
  });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("missing tensor lm_head.weight"), std::string::npos) << e;
}

TEST_F(LlamaLoad, UnexpectedTensorIsReported) {
  edit_tensors(dir_.path(), [](auto& tensors) {
    tensors.emplace_back("model.layers.0.self_attn.q_norm.weight", Tensor::zeros({32}, DType::f32));
  });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("unexpected tensor model.layers.0.self_attn.q_norm.weight"), std::string::npos) << e;
}

TEST_F(LlamaLoad, QwenWithoutBiasesNamesTheBias) {
  edit_config(dir_.path(), [](auto& j) {
    j["model_type"] = "qwen2";
    j["architectures"] = {"Qwen2ForCausalLM"};
  });
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("missing tensor model.layers.0.self_attn.q_proj.bias"), std::string::npos) << e;
  EXPECT_NE(e.find("[96]"), std::string::npos) << e;
}

TEST_F(LlamaLoad, TokenizerLargerThanTheModelIsRejected) {
  Tokenizer tokenizer = Tokenizer::load(std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/tokenizers/gpt2");
  LlamaHyper hyper;
  hyper.vocab = spec_.vocab;
  try {
    check_tokenizer_fits(tokenizer, "TOKDIR", hyper, "MODELDIR");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("TOKDIR/tokenizer.json"), std::string::npos) << m;
    EXPECT_NE(m.find("MODELDIR/config.json has vocab_size 128"), std::string::npos) << m;
  }
  hyper.vocab = static_cast<int64_t>(tokenizer.vocab_size());
  EXPECT_NO_THROW(check_tokenizer_fits(tokenizer, "TOKDIR", hyper, "MODELDIR"));
}

TEST_F(LlamaLoad, TokenIdOutsideTheVocabIsAnError) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  LlamaModel model = LlamaModel::load(dir_.path(), *cpu);
  KvCache cache = model.make_cache(4);
  EXPECT_THROW(model.forward({1, 128}, cache), Error);
  EXPECT_EQ(cache.length(), 0);
  model.forward({1, 2, 3}, cache);
  EXPECT_THROW(model.forward({1, 2}, cache), Error);  // 3 + 2 > 4 positions
}

}  // namespace
