#include "nibble/model/activation_table.h"

namespace nibble {

const std::vector<ActivationEntry>& block_activation_table() {
  using D = ActivationDims;
  static const std::vector<ActivationEntry> table = {
      {"block_input", "residual path; the checkpoint a recompute starts from", false, true,
       [](const D& d) { return d.hidden; }},
      {"attn_norm_rstd", "rmsnorm backward", true, false, [](const D&) { return int64_t{1}; }},
      {"attn_norm_out", "q/k/v input: their input gradient and LoRA A gradients", false, false,
       [](const D& d) { return d.hidden; }},
      {"q", "attention backward (after RoPE)", false, false, [](const D& d) { return d.heads * d.head_dim; }},
      {"k", "attention backward (after RoPE)", false, false, [](const D& d) { return d.kv_heads * d.head_dim; }},
      {"v", "attention backward", false, false, [](const D& d) { return d.kv_heads * d.head_dim; }},
      {"attn_out", "attention backward; o_proj input", false, false, [](const D& d) { return d.heads * d.head_dim; }},
      {"attn_lse", "attention backward: softmax log-sum-exp per head", true, false,
       [](const D& d) { return d.heads; }},
      {"attn_residual", "second residual path", false, false, [](const D& d) { return d.hidden; }},
      {"mlp_norm_rstd", "rmsnorm backward", true, false, [](const D&) { return int64_t{1}; }},
      {"mlp_norm_out", "gate/up input: their input gradient and LoRA A gradients", false, false,
       [](const D& d) { return d.hidden; }},
      {"gate", "swiglu backward", false, false, [](const D& d) { return d.intermediate; }},
      {"up", "swiglu backward", false, false, [](const D& d) { return d.intermediate; }},
      {"swiglu_out", "down_proj input: LoRA A gradient", false, false, [](const D& d) { return d.intermediate; }},
      {"lora_hidden", "x A^T of every adapted linear (fp32, as PEFT computes it): LoRA B gradients", true, false,
       [](const D& d) { return d.lora_rank * d.lora_targets; }},
  };
  return table;
}

namespace {

int64_t sum_bytes(const ActivationDims& dims, int64_t dtype_size, bool only_kept) {
  int64_t bytes = 0;
  for (const ActivationEntry& e : block_activation_table()) {
    if (only_kept && !e.kept_when_checkpointing) continue;
    bytes += e.elements_per_token(dims) * (e.float32 ? 4 : dtype_size);
  }
  return bytes;
}

}  // namespace

int64_t block_activation_bytes_per_token(const ActivationDims& dims, int64_t compute_dtype_size) {
  return sum_bytes(dims, compute_dtype_size, false);
}

int64_t block_checkpoint_bytes_per_token(const ActivationDims& dims, int64_t compute_dtype_size) {
  return sum_bytes(dims, compute_dtype_size, true);
}

}  // namespace nibble
