// The GPU memory of a QLoRA training run, part by part, computed from the same size functions
// the allocating code uses (quant/sizes.h, the activation table). `nibble memory` prints it;
// `nibble train` will print it next to what it measured.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nibble/core/dtype.h"
#include "nibble/core/memory.h"
#include "nibble/model/model_shape.h"
#include "nibble/optim/optimizer.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

struct TrainShape {
  int64_t seq_len = 2048;
  int64_t batch = 1;
  int64_t lora_rank = 64;
  std::vector<std::string> lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj",
                                           "gate_proj", "up_proj", "down_proj"};
  bool gradient_checkpointing = true;
  AdamwVariant optimizer = AdamwVariant::paged_adamw_32bit;
  QuantConfig quant;
  DType compute_dtype = DType::bf16;
  DType lora_dtype = DType::f32;  // adapter weights, their gradients and master copies
  int64_t loss_chunk_tokens = 1024;  // lm_head + cross-entropy run this many tokens at a time
  int64_t gemm_workspace_bytes = 32ll << 20;
};

struct MemoryPart {
  std::string name;
  MemoryCategory category;
  int64_t bytes = 0;
  bool on_gpu = true;  // false: host-backed (paged optimizer states) or shown for comparison only
  std::string detail;
};

struct MemoryPlan {
  ModelShape model;
  TrainShape train;
  std::vector<MemoryPart> parts;
  int64_t gpu_total = 0;
  int64_t paged_total = 0;  // managed memory that migrates to the GPU only for the update

  int64_t quantized_params = 0;
  int64_t unquantized_params = 0;
  int64_t lora_params = 0;
  int64_t packed_weight_bytes = 0;
  int64_t constants_without_dq = 0;  // bytes, per-tensor tables included
  int64_t constants_with_dq = 0;
  double bits_per_param_without_dq = 0;  // the QLoRA paper's count: 32/B and 8/B + 32/(256 B)
  double bits_per_param_with_dq = 0;
};

MemoryPlan plan_memory(const ModelShape& model, const TrainShape& train);

}  // namespace nibble
