// Putting an adapter onto a loaded model and reading it back: the model applies each projection's
// A and B unmerged (model/llama_lora.h), on its own device, and the optimizer updates them there;
// the LoraAdapter on the CPU is what io/ saves.
#pragma once

#include "nibble/lora/lora_adapter.h"
#include "nibble/model/llama.h"

namespace nibble {

// Copies every adapter tensor to the model's device (as F32) and attaches it to the projection
// of the same module name, with its scaling and the config's lora_dropout; projections the
// adapter does not target are left without one. Throws nibble::Error naming the module when the
// model has no such projection or its shape differs from the adapter's.
void lora_attach(LlamaModel& model, const LoraAdapter& adapter);

// Copies the model's current A and B of every module of `adapter` back into it (on the CPU).
void lora_read_back(LlamaModel& model, LoraAdapter& adapter);

}  // namespace nibble
