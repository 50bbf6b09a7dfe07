// What one training step keeps for the backward pass: one table, read by the forward/backward
// code (which tensors to save, which to recompute) and by `nibble memory` (how many bytes).
// With gradient checkpointing only the entries marked `kept_when_checkpointing` live across
// the whole forward; the rest exist for one block at a time, recomputed in its backward.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "nibble/model/model_shape.h"

namespace nibble {

struct ActivationDims {
  int64_t hidden = 0;        // C
  int64_t intermediate = 0;  // F
  int64_t heads = 0;         // H
  int64_t kv_heads = 0;      // KVH
  int64_t head_dim = 0;      // D
  int64_t lora_rank = 0;     // R
  int64_t lora_targets = 0;  // adapted linears in one block (0..7)
};

struct ActivationEntry {
  std::string_view name;
  std::string_view why;  // which backward needs it
  bool float32 = false;  // statistics kept in fp32 whatever the compute dtype
  bool kept_when_checkpointing = false;
  std::function<int64_t(const ActivationDims&)> elements_per_token;
};

// One decoder block's entries, in forward order.
const std::vector<ActivationEntry>& block_activation_table();

// Bytes per token of one block: everything, and only what checkpointing keeps.
int64_t block_activation_bytes_per_token(const ActivationDims& dims, int64_t compute_dtype_size);
int64_t block_checkpoint_bytes_per_token(const ActivationDims& dims, int64_t compute_dtype_size);

}  // namespace nibble
