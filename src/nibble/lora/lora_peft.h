// LoRA adapters to and from PEFT folders: io/peft_adapter reads and writes the files, this
// maps them onto a model's linears and checks every tensor against the shape the model needs.
#pragma once

#include <string>

#include "nibble/lora/lora_adapter.h"
#include "nibble/model/model_shape.h"

namespace nibble {

// Reads DIR (ours or PEFT's) for a model of `shape`. Every targeted module must have lora_A
// [R, K] and lora_B [N, R] (R after rank_pattern), stored as F32, BF16 or F16 (kept as fp32);
// a missing or misshapen tensor, or a tensor the config does not account for (an adapter made
// for another model), is a nibble::Error naming the file, the tensor and the expected shape.
LoraAdapter lora_load_peft(const std::string& dir, const ModelShape& shape);

// Writes DIR as PEFT 0.21 writes it (F32 tensors, adapter_config.json with PEFT's fields).
void lora_save_peft(const std::string& dir, const LoraAdapter& adapter);

}  // namespace nibble
