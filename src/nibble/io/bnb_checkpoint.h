// A QuantizedWeight as bitsandbytes serializes a Linear4bit (research/bnb-format.md section 3.1):
// for the module `P`, the tensors P.weight, P.weight.absmax, P.weight.quant_map, with double
// quantization P.weight.nested_absmax and P.weight.nested_quant_map, and the JSON blob
// P.weight.quant_state.bitsandbytes__nf4 (or __fp4) whose bytes match Python's json.dumps.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "nibble/io/safetensors.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// The JSON blob's text, byte for byte as bitsandbytes writes it (keys quant_type, blocksize,
// dtype, shape, then with DQ nested_blocksize, nested_dtype, nested_offset).
std::string bnb_quant_state_json(const QuantizedWeight& weight);

// The tensors of `module` ("model.layers.0.mlp.up_proj"; a trailing '.' is accepted), ready for
// save_safetensors. Validates the pieces' dtypes and shapes first.
std::vector<std::pair<std::string, Tensor>> bnb_weight_tensors(const std::string& module,
                                                                const QuantizedWeight& weight);

// Reads the weight `weight_name` ("model.layers.0.mlp.up_proj.weight") back, checking every
// piece against the JSON: dtypes, shapes consistent with shape and blocksize, nested pieces
// present exactly when the JSON has nested_*. A packed weight stored in another quant_storage
// dtype (bf16 for FSDP) is reinterpreted as bytes. The tensors view the model's mapping.
QuantizedWeight load_bnb_weight(const SafetensorsModel& model, const std::string& weight_name);

// True for the auxiliary tensors (…weight.absmax, .quant_map, .nested_*, .quant_state.*), which
// a loader must not treat as weights of their own.
bool is_bnb_auxiliary_tensor(const std::string& name);
// True when `weight_name` has a quant_state blob beside it in `model`.
bool is_bnb_quantized_weight(const SafetensorsModel& model, const std::string& weight_name);
// The names ("….weight") of every 4-bit weight in the folder, in the model's name order.
std::vector<std::string> list_bnb_quantized_weights(const SafetensorsModel& model);

}  // namespace nibble
