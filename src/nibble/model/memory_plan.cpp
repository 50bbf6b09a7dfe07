#include "nibble/model/memory_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/model/activation_table.h"
#include "nibble/quant/sizes.h"

namespace nibble {

MemoryPlan plan_memory(const ModelShape& model, const TrainShape& train) {
  NIBBLE_CHECK(model.layers > 0 && model.hidden > 0 && model.heads > 0, "model shape '{}' is empty", model.name);
  NIBBLE_CHECK(train.seq_len > 0 && train.batch > 0 && train.lora_rank >= 0,
               "sequence length, batch and LoRA rank must be positive");
  MemoryPlan plan;
  plan.model = model;
  plan.train = train;

  const int64_t B = train.quant.blocksize;
  const int64_t act_size = static_cast<int64_t>(dtype_size(train.compute_dtype));
  const int64_t lora_size = static_cast<int64_t>(dtype_size(train.lora_dtype));

  int64_t largest_linear = 0, lora_targets_per_block = 0, adam_bytes = 0;
  for (const LinearShape& l : block_linears(model)) {
    plan.packed_weight_bytes += quant_packed_bytes(l.numel()) * model.layers;
    plan.constants_without_dq += quant_constant_bytes(l.numel(), B, false) * model.layers;
    plan.constants_with_dq += quant_constant_bytes(l.numel(), B, true) * model.layers;
    largest_linear = std::max(largest_linear, l.numel());
    if (std::find(train.lora_targets.begin(), train.lora_targets.end(), l.name) == train.lora_targets.end())
      continue;
    ++lora_targets_per_block;
    int64_t a = train.lora_rank * l.in, b = l.out * train.lora_rank;
    plan.lora_params += (a + b) * model.layers;
    adam_bytes += (adamw_state_bytes(a, train.optimizer) + adamw_state_bytes(b, train.optimizer)) * model.layers;
  }
  plan.quantized_params = quantized_parameter_count(model);
  plan.unquantized_params = unquantized_parameter_count(model);
  plan.bits_per_param_without_dq = quant_constant_bits_per_param(B, false);
  plan.bits_per_param_with_dq = quant_constant_bits_per_param(B, true);

  auto add = [&](std::string name, MemoryCategory category, int64_t bytes, bool on_gpu, std::string detail) {
    plan.parts.push_back({std::move(name), category, bytes, on_gpu, std::move(detail)});
  };
  const bool dq = train.quant.double_quant;
  add(fmt::format("4-bit weights ({})", quant_type_name(train.quant.type)), MemoryCategory::base_weights,
      plan.packed_weight_bytes, true, fmt::format("{:.3f} B parameters, 4 bits each", plan.quantized_params / 1e9));
  add("constants without DQ", MemoryCategory::quant_constants, plan.constants_without_dq, !dq,
      fmt::format("float32 absmax per {} weights", B));
  add("constants with DQ", MemoryCategory::quant_constants, plan.constants_with_dq, dq,
      fmt::format("8-bit absmax, float32 per 256 blocks"));
  add("unquantized tensors", MemoryCategory::unquantized, plan.unquantized_params * act_size, true,
      model.tied_embeddings ? "embeddings (tied lm_head), norms" : "embeddings, lm_head, norms");
  add(fmt::format("LoRA weights (r={}, {})", train.lora_rank, dtype_torch_name(train.lora_dtype)),
      MemoryCategory::lora, plan.lora_params * lora_size, true,
      fmt::format("{:.1f} M parameters on {} linears a block", plan.lora_params / 1e6, lora_targets_per_block));
  add("LoRA gradients", MemoryCategory::gradients, plan.lora_params * lora_size, true, "");
  const bool paged = train.optimizer != AdamwVariant::adamw;
  add(fmt::format("optimizer states ({})", adamw_variant_name(train.optimizer)), MemoryCategory::optimizer, adam_bytes,
      !paged, paged ? "managed memory: moves to the GPU for the update, leaves it under pressure" : "");

  ActivationDims dims{model.hidden, model.intermediate, model.heads, model.kv_heads,
                      model.head_dim, train.lora_rank, lora_targets_per_block};
  const int64_t tokens = train.seq_len * train.batch;
  const int64_t block_bytes = block_activation_bytes_per_token(dims, act_size) * tokens;
  int64_t activations = 0;
  std::string how;
  if (train.gradient_checkpointing) {
    // Every block's checkpoint, plus one block's full set while it is recomputed.
    activations = block_checkpoint_bytes_per_token(dims, act_size) * tokens * model.layers + block_bytes;
    how = fmt::format("checkpoints of {} blocks + one block recomputed", model.layers);
  } else {
    activations = block_bytes * model.layers;
    how = fmt::format("all of {} blocks", model.layers);
  }
  activations += tokens * (model.hidden * act_size + 4);  // final norm output and its statistics
  add("activations", MemoryCategory::activations, activations, true,
      fmt::format("{} tokens; {}", tokens, how));

  // Backward of one block holds gradients the size of that block's activations; the 4-bit
  // linears are dequantized into one reused buffer; lm_head + cross-entropy keep fp32 logits and
  // their gradient for one chunk of tokens.
  const int64_t chunk = std::min(train.loss_chunk_tokens, tokens);
  int64_t workspace = block_bytes + largest_linear * act_size + train.gemm_workspace_bytes +
                      2 * chunk * model.vocab * 4;
  add("workspace", MemoryCategory::workspace, workspace, true,
      fmt::format("backward of one block, dequantize buffer, GEMM, loss chunk of {} tokens", chunk));

  for (const MemoryPart& p : plan.parts) {
    if (p.on_gpu) plan.gpu_total += p.bytes;
    else if (p.category == MemoryCategory::optimizer) plan.paged_total += p.bytes;
  }
  return plan;
}

}  // namespace nibble
