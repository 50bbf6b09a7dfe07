// Tiny random Llama-family model folders written as real Hugging Face folders (config.json +
// model.safetensors), for tests that must not download anything.
#pragma once

#include <cstdint>
#include <string>

#include "nibble/core/dtype.h"

namespace nibble::testing {

struct TinyModelSpec {
  int64_t hidden = 96;
  int64_t intermediate = 200;  // 96 x 200 = 19200 weights: 300 blocks of 64, so DQ has a partial block
  int64_t layers = 2;
  int64_t heads = 3;
  int64_t kv_heads = 1;
  int64_t vocab = 128;
  bool tied = false;
  DType dtype = DType::bf16;
  uint64_t seed = 1;
  float stddev = 0.02f;
};

// Writes DIR/config.json and DIR/model.safetensors (creating DIR). Weights ~ N(0, stddev).
void write_tiny_llama(const std::string& dir, const TinyModelSpec& spec = {});

// Puts a real tokenizer into DIR: tokenizer.json of tests/golden/tokenizers/smollm2 (byte-level
// BPE, 3000 ids: use TinyModelSpec::vocab = 3000 with it) and a tokenizer_config.json with its
// special tokens and SmolLM2's ChatML chat template, so data of every format can be read.
void write_tiny_tokenizer(const std::string& dir);

// A fresh empty folder under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "nibble-test");
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace nibble::testing
