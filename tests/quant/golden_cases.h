// Reading the bitsandbytes golden files written by tests/golden/make_bnb_golden.py, shared by the
// CPU and CUDA golden tests. Each case holds bnb's input, packed codes, constants and dequant.
#pragma once

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "nibble/io/safetensors.h"
#include "nibble/quant/quant_state.h"

namespace nibble::quant_test {

inline std::string golden_dir() { return std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/bnb"; }

struct GoldenCase {
  std::string name;
  std::map<std::string, std::string> metadata;
  Tensor input;    // F32/F16/BF16 [n]
  Tensor dequant;  // bnb's dequantize_4bit output, input dtype [n]
  QuantizedWeight bnb;  // bnb's state as a CPU QuantizedWeight
  bool power_of_two_absmax = false;
};

inline std::vector<std::string> golden_files() {
  std::vector<std::string> files;
  if (!std::filesystem::is_directory(golden_dir())) return files;
  for (const auto& entry : std::filesystem::directory_iterator(golden_dir()))
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

inline GoldenCase load_golden(const std::string& path) {
  SafetensorsFile file = SafetensorsFile::open(path);
  GoldenCase c;
  c.name = std::filesystem::path(path).filename().string();
  c.metadata = file.metadata();
  c.input = file.tensor("input");
  c.dequant = file.tensor("dequant");
  c.power_of_two_absmax = c.metadata.at("power_of_two_absmax") == "true";
  QuantizedWeight& w = c.bnb;
  w.type = parse_quant_type(c.metadata.at("quant_type"));
  w.blocksize = std::stoll(c.metadata.at("blocksize"));
  w.dtype = c.input.dtype();
  w.shape = {c.input.numel()};
  w.packed = file.tensor("packed");
  w.packed = w.packed.reshape({w.packed.numel(), 1});
  w.absmax = file.tensor("absmax");
  w.double_quant = c.metadata.at("double_quant") == "true";
  if (w.double_quant) {
    w.nested_absmax = file.tensor("nested_absmax");
    w.nested_code = file.tensor("nested_quant_map");
    w.offset = file.tensor("offset").data_as<float>()[0];
    w.nested_blocksize = 256;
  }
  return c;
}

}  // namespace nibble::quant_test
