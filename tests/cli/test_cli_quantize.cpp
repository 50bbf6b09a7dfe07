// `nibble quantize` as a user runs it: the output folder, its bytes, and every bad input.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/io/bnb_checkpoint.h"
#include "nibble/io/safetensors.h"
#include "nibble/quant/quantize.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/tiny_model.h"

namespace fs = std::filesystem;
using namespace nibble;
using namespace nibble::testing;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

void expect_quantized_folder(const std::string& in, const std::string& out, const QuantConfig& config) {
  SafetensorsModel source = SafetensorsModel::open(in);
  SafetensorsModel result = SafetensorsModel::open(out);
  int quantized = 0;
  for (const std::string& name : source.names()) {
    bool linear = name.find("_proj.weight") != std::string::npos;
    if (!linear) {
      ASSERT_TRUE(result.contains(name)) << name;
      EXPECT_TRUE(same_bytes(source.tensor(name), result.tensor(name))) << name << " must be copied unchanged";
      continue;
    }
    ++quantized;
    ASSERT_TRUE(is_bnb_quantized_weight(result, name)) << name;
    QuantizedWeight ours = load_bnb_weight(result, name);
    QuantizedWeight expected = quantize_4bit(source.tensor(name), config);
    EXPECT_EQ(ours.shape, expected.shape) << name;
    EXPECT_EQ(ours.dtype, source.tensor(name).dtype()) << name;
    EXPECT_EQ(ours.blocksize, config.blocksize);
    EXPECT_EQ(ours.double_quant, config.double_quant);
    EXPECT_TRUE(same_bytes(ours.packed, expected.packed)) << name;
    EXPECT_TRUE(same_bytes(ours.absmax, expected.absmax)) << name;
    if (config.double_quant) {
      EXPECT_TRUE(same_bytes(ours.nested_absmax, expected.nested_absmax)) << name;
      EXPECT_EQ(ours.offset, expected.offset) << name;
    }
  }
  EXPECT_EQ(quantized, 14);
  nlohmann::json qc = read_json(out + "/config.json")["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "bitsandbytes");
  EXPECT_EQ(qc["load_in_4bit"], true);
  EXPECT_EQ(qc["bnb_4bit_quant_type"], quant_type_name(config.type));
  EXPECT_EQ(qc["bnb_4bit_use_double_quant"], config.double_quant);
}

}  // namespace

TEST(CliQuantize, Nf4DoubleQuantOnCpu) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  std::ofstream(tmp / "model/tokenizer.json") << "{}";
  CliResult r = run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "q") + " --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("quantized 14 tensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.127 bits/param"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(tmp / "q/tokenizer.json"));
  expect_quantized_folder(tmp / "model", tmp / "q", QuantConfig{});
  // The result is accepted back as a model folder.
  CliResult m = run_nibble("memory --model " + (tmp / "q"));
  EXPECT_EQ(m.exit_code, 0) << m.output;
}

TEST(CliQuantize, Fp4WithoutDoubleQuantFp32Input) {
  TempDir tmp;
  TinyModelSpec spec;
  spec.dtype = DType::f32;
  write_tiny_llama(tmp / "model", spec);
  CliResult r = run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "q") +
                           " --device cpu --quant-type fp4 --no-double-quant --blocksize 128");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  QuantConfig config;
  config.type = QuantType::fp4;
  config.double_quant = false;
  config.blocksize = 128;
  expect_quantized_folder(tmp / "model", tmp / "q", config);
}

TEST(CliQuantize, RefusesNonEmptyOutput) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  fs::create_directories(tmp / "q");
  std::ofstream(tmp / "q/keep.txt") << "mine";
  CliResult r = run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "q") + " --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(tmp / "q/keep.txt"));
}

TEST(CliQuantize, MissingConfigKeyNamesFileAndKey) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  nlohmann::json config = read_json(tmp / "model/config.json");
  config.erase("hidden_size");
  std::ofstream(tmp / "model/config.json") << config.dump();
  CliResult r = run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "q") + " --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hidden_size"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "q"));
}

TEST(CliQuantize, TruncatedSafetensorsLeavesNothing) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  fs::resize_file(tmp / "model/model.safetensors", fs::file_size(tmp / "model/model.safetensors") - 10);
  CliResult r = run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "q") + " --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Segmentation"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp / "q"));
  for (const auto& entry : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
}

TEST(CliQuantize, UnwritableOutputLeavesNothing) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  std::ofstream(tmp / "file") << "not a folder";
  CliResult r = run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "file/q") + " --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("file/q"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_regular_file(tmp / "file"));
}

TEST(CliQuantize, AlreadyQuantizedInputIsRefused) {
  TempDir tmp;
  write_tiny_llama(tmp / "model");
  ASSERT_EQ(run_nibble("quantize --model " + (tmp / "model") + " --out " + (tmp / "q") + " --device cpu").exit_code, 0);
  CliResult r = run_nibble("quantize --model " + (tmp / "q") + " --out " + (tmp / "q2") + " --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("already quantized"), std::string::npos) << r.output;
}
