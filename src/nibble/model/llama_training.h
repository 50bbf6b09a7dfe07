// Training a Llama's LoRA adapters: the forward pass that keeps what the backward needs, and the
// backward, written out op by op (DESIGN.md principle 2). What one block keeps is
// model/activation_table.h's table, entry for entry (BlockActivations below); with gradient
// checkpointing only each block's input is kept through the forward, and a block's other
// entries are recomputed from it just before its backward, as transformers' checkpointing of
// each decoder layer does.
//
// The loss is transformers' ForCausalLMLoss: cross-entropy of the fp32-widened logits against
// the already shifted labels, summed, times grad_scale (1 / target tokens of the whole
// optimizer step, for its reduction over gradient-accumulation micro-batches). The logits are
// formed `loss_chunk_tokens` rows at a time, so [tokens, vocab] is never held whole.
//
// Gradients reach only the LoRA adapters (LlamaLora::grad_a, grad_b, F32), which the caller
// zeroes at the start of each optimizer step; every micro-batch adds into them.
#pragma once

#include <cstdint>
#include <vector>

#include "nibble/model/llama.h"
#include "nibble/text/dataset_batch.h"

namespace nibble {

struct TrainingOptions {
  bool gradient_checkpointing = true;
  int64_t loss_chunk_tokens = 1024;  // TrainShape::loss_chunk_tokens, what `nibble memory` assumes
  uint64_t dropout_seed = 0;  // LoRA dropout masks: Philox key
};

struct MicroBatchLoss {
  double loss_sum = 0.0;      // sum of the target tokens' cross-entropy
  int64_t target_tokens = 0;  // labels != kIgnoreIndex
};

class LlamaTraining {
 public:
  // Gives every adapter of `model` its gradient tensors (zeroed). The model must outlive this.
  LlamaTraining(LlamaModel& model, const TrainingOptions& options);

  // Forward and backward of one micro-batch: every adapter gradient += grad_scale * d(loss_sum).
  // `micro_step` numbers the micro-batch over the whole run; it selects the dropout masks, so a
  // resumed run draws the same ones.
  MicroBatchLoss forward_backward(const Batch& batch, float grad_scale, uint64_t micro_step);

  // The loss of a batch without dropout or gradients (evaluation).
  MicroBatchLoss evaluate(const Batch& batch);

  // The adapters' gradients, in block_linears() order (A then B of each adapted projection).
  std::vector<Tensor> gradients();
  void zero_gradients();

 private:
  // One block's saved tensors: the entries of block_activation_table(), in its order.
  struct BlockActivations {
    Tensor input;                            // [T, C] block_input
    Tensor attn_norm_rstd, attn_norm_out;    // F32 [T], [T, C]
    Tensor q, k, v;                          // [T, H*D] after RoPE, [T, KVH*D] after RoPE, [T, KVH*D]
    Tensor attn_out, attn_lse;               // [T, H*D], F32 [H, T]
    Tensor attn_residual;                    // [T, C]
    Tensor mlp_norm_rstd, mlp_norm_out;      // F32 [T], [T, C]
    Tensor gate, up, swiglu_out;             // [T, F]
    Tensor lora_hidden[7];                   // F32 [T, R] of each adapted projection
  };
  struct Tokens;  // one micro-batch on the device

  Tokens upload(const Batch& batch);
  void allocate(BlockActivations& a, int64_t T);
  void block_forward(int64_t layer, BlockActivations& a, Tensor& out, const Tokens& tokens, bool training);
  void block_backward(int64_t layer, BlockActivations& a, Tensor& d_residual, const Tokens& tokens);
  // The head: final norm, lm_head and the loss, chunked; d_hidden (when not null) receives
  // d(loss * grad_scale)/d(hidden).
  double head(const Tensor& hidden, const Tokens& tokens, float grad_scale, Tensor* d_hidden);

  void project(Tensor& y, const Tensor& x, LlamaLinear& linear, int64_t layer, int slot, Tensor* hidden,
               bool training);
  // dx (=, or += when accumulate) the input gradient of `linear` from dy, with its adapter's
  // gradients added into grad_a/grad_b.
  void project_backward(Tensor& dx, bool accumulate, const Tensor& dy, const Tensor& x, LlamaLinear& linear,
                        int64_t layer, int slot, const Tensor& hidden);
  LoraDropoutKey dropout_key(int64_t layer, int slot) const;

  LlamaModel& model_;
  TrainingOptions options_;
  uint64_t micro_step_ = 0;
};

}  // namespace nibble
