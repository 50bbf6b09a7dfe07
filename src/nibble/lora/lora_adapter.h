// LoRA adapters on a Llama's block linears: y = W x + scaling * B (A dropout(x)).
//
// Precision: A and B are fp32 master weights, and their gradients are fp32 too, as PEFT keeps
// adapter weights in fp32 by default; an optimizer step on fp32 does not lose small updates the
// way bf16 (8 mantissa bits) would. When the compute runs in bf16, lora_compute_copy() gives the
// rounded copies for the matmuls; the masters are what is saved and what is updated.
//
// Letters: R rank, N out features, K in features (as in backend.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nibble/core/tensor.h"
#include "nibble/io/peft_adapter.h"
#include "nibble/lora/lora_targets.h"
#include "nibble/model/model_shape.h"

namespace nibble {

struct LoraLinear {
  LoraTarget target;    // module, layer, shape, r, alpha
  double scaling = 0;   // lora_scaling(alpha, r, use_rslora)
  Tensor a;             // F32 [R, K]
  Tensor b;             // F32 [N, R]
};

struct LoraAdapter {
  LoraConfig config;
  std::vector<LoraLinear> linears;  // in lora_resolve_targets() order

  // The adapter of "model.layers.3.mlp.down_proj", or nullptr when that module has none.
  const LoraLinear* find(const std::string& module) const;
  LoraLinear* find(const std::string& module);
  int64_t parameter_count() const;
};

// A fresh adapter for `shape`, initialised as PEFT does (config.init_lora_weights):
//   kaiming:  A ~ U(-1/sqrt(K), 1/sqrt(K)) (kaiming_uniform_ with a = sqrt(5)), B = 0
//   gaussian: A ~ N(0, (1/R)^2), B = 0
//   none:     A as kaiming, B ~ U(-1/sqrt(R), 1/sqrt(R)) (nn.Linear's own init, fan_in = R)
// from Philox with key `seed`. Each tensor has its own stream, lora_init_stream(layer, linear, b),
// indexed by element, so its values do not depend on which other modules are targeted, on the
// order tensors are filled in or on the number of threads.
LoraAdapter lora_init(const LoraConfig& config, const ModelShape& shape, uint64_t seed);

// The Philox stream of one init tensor: a domain tag in the top bits keeps these streams apart
// from every other user of the same seed (dropout, data shuffling).
uint64_t lora_init_stream(int64_t layer, int64_t linear, bool lora_b);

struct LoraComputeCopy {
  Tensor a;  // [R, K] in the compute dtype
  Tensor b;  // [N, R]
};
// A and B rounded to `dtype` (F32, BF16 or F16), on the CPU.
LoraComputeCopy lora_compute_copy(const LoraLinear& linear, DType dtype);

}  // namespace nibble
