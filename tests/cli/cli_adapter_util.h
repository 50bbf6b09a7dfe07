// Shared by the CLI tests of generate/eval/merge with adapters: a tiny model folder with a real
// tokenizer, adapters written as PEFT folders, and logits computed in-process for comparison.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nibble/core/dtype.h"
#include "nibble/io/peft_adapter.h"
#include "nibble/lora/lora_adapter.h"
#include "tests/support/tiny_model.h"

namespace nibble::testing {

// write_tiny_llama + write_tiny_tokenizer (SmolLM2's byte-level BPE and ChatML template), with
// vocab set to the tokenizer's 3000 ids.
void write_tiny_model_with_tokenizer(const std::string& dir, DType dtype, uint64_t seed = 1);

// An adapter for the model in `model_dir` (r 4, lora_alpha 8, all linear) written as a PEFT
// folder at `adapter_dir` and returned. `init` kaiming gives B = 0 (a no-op); none gives B != 0.
LoraAdapter write_adapter(const std::string& model_dir, const std::string& adapter_dir, LoraInit init,
                          uint64_t seed);

// Logits F32 [T, V] (row-major) of `ids` from a fresh model loaded from `model_dir` on the CPU
// in `compute` dtype, with the adapter at `adapter_dir` attached unmerged when not empty.
std::vector<float> model_logits(const std::string& model_dir, const std::string& adapter_dir,
                                const std::vector<int32_t>& ids, DType compute);

double max_abs(const std::vector<float>& a);
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace nibble::testing
