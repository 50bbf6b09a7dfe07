// What every command that runs a model takes (--model, --adapter, --device, --dtype, --quantize),
// and the one way those options become a loaded model with its adapter attached.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "nibble/backend/backend.h"
#include "nibble/lora/lora_adapter.h"
#include "nibble/model/llama.h"
#include "nibble/text/chat_template.h"

namespace nibble::cli {

struct ModelOptions {
  std::string model_dir;
  std::string adapter_dir;  // empty: no adapter
  std::string device;       // empty: cuda when a GPU is present
  std::string dtype;        // empty: the checkpoint's (bf16 for 4-bit)
  std::string quantize;     // empty: as stored
};

// Adds --model (required), --adapter, --device, --dtype and --quantize to `sub`.
void add_model_options(CLI::App& sub, ModelOptions& options);

// "" means cuda when a GPU is visible, else cpu.
Device choose_device(const std::string& name);
// f32 | float32, f16 | float16, bf16 | bfloat16.
DType parse_compute_dtype(const std::string& name);

struct LoadedModel {
  std::unique_ptr<Backend> backend;  // declared first: the model must go before its backend
  std::unique_ptr<LlamaModel> model;
  std::optional<LoraAdapter> adapter;  // as read from --adapter, on the CPU
};

// Loads the model on the chosen device and, with --adapter, reads the adapter for the model's
// shape (lora_load_peft: ours or PEFT's folder; a mismatch names the file and the tensor) and
// attaches it, applied unmerged in every forward as PEFT applies it.
LoadedModel load_model(const ModelOptions& options);

}  // namespace nibble::cli
