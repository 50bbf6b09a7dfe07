#include "nibble/model/llama_training.h"

#include <algorithm>

namespace nibble {

namespace {

// "D" for dropout in the top byte: apart from every other Philox stream of the same seed.
constexpr uint64_t kDropoutDomain = uint64_t{0x44} << 56;

Tensor on_device(const std::vector<int32_t>& values, Device device) {
  Tensor t = Tensor::from_external(const_cast<int32_t*>(values.data()), {static_cast<int64_t>(values.size())},
                                   DType::i32, Device::cpu, nullptr);
  return t.to(device, MemoryCategory::activations);
}

}  // namespace

// The micro-batch's rows laid end to end as one packed sequence of T = B * seq_length tokens.
struct LlamaTraining::Tokens {
  int64_t T = 0;
  Tensor ids, labels, positions, sequence_ids;  // I32 [T]
  int64_t target_tokens = 0;
};

LlamaTraining::LlamaTraining(LlamaModel& model, const TrainingOptions& options) : model_(model), options_(options) {
  NIBBLE_CHECK(options.loss_chunk_tokens > 0, "training: loss_chunk_tokens is {}; expected at least 1",
               options.loss_chunk_tokens);
  for (LlamaLinear* l : model_.block_linears()) {
    if (!l->lora) continue;
    l->lora->grad_a = Tensor::zeros(l->lora->a.shape(), DType::f32, l->lora->a.device(), MemoryCategory::gradients);
    l->lora->grad_b = Tensor::zeros(l->lora->b.shape(), DType::f32, l->lora->b.device(), MemoryCategory::gradients);
  }
}

std::vector<Tensor> LlamaTraining::gradients() {
  std::vector<Tensor> grads;
  for (LlamaLinear* l : model_.block_linears()) {
    if (!l->lora) continue;
    grads.push_back(l->lora->grad_a);
    grads.push_back(l->lora->grad_b);
  }
  return grads;
}

void LlamaTraining::zero_gradients() {
  for (LlamaLinear* l : model_.block_linears()) {
    if (!l->lora) continue;
    l->lora->grad_a = Tensor::zeros(l->lora->a.shape(), DType::f32, l->lora->a.device(), MemoryCategory::gradients);
    l->lora->grad_b = Tensor::zeros(l->lora->b.shape(), DType::f32, l->lora->b.device(), MemoryCategory::gradients);
  }
}

LlamaTraining::Tokens LlamaTraining::upload(const Batch& batch) {
  const int64_t T = batch.rows * batch.seq_length;
  NIBBLE_CHECK(T > 0 && static_cast<int64_t>(batch.input_ids.size()) == T &&
                   static_cast<int64_t>(batch.labels.size()) == T &&
                   static_cast<int64_t>(batch.positions.size()) == T &&
                   static_cast<int64_t>(batch.sequence_ids.size()) == T,
               "training: a batch of {} rows x {} tokens must hold {} ids, labels, positions and sequence ids",
               batch.rows, batch.seq_length, T);
  // Rows are laid end to end, so a sequence id that repeats across a row boundary would join two
  // sequences: every (row, id) run gets its own number.
  std::vector<int32_t> sequence(static_cast<size_t>(T));
  int32_t next = -1;
  for (int64_t t = 0; t < T; ++t) {
    const bool starts = t % batch.seq_length == 0 || batch.sequence_ids[t] != batch.sequence_ids[t - 1];
    if (starts) ++next;
    sequence[t] = next;
  }
  int64_t max_position = 0;
  for (int32_t p : batch.positions) max_position = std::max<int64_t>(max_position, p);
  model_.ensure_rope_positions(max_position + 1);
  const Device device = model_.backend().device();
  Tokens tokens;
  tokens.T = T;
  tokens.ids = on_device(batch.input_ids, device);
  tokens.labels = on_device(batch.labels, device);
  tokens.positions = on_device(batch.positions, device);
  tokens.sequence_ids = on_device(sequence, device);
  for (int32_t label : batch.labels) tokens.target_tokens += label != kIgnoreIndex;
  return tokens;
}

void LlamaTraining::allocate(BlockActivations& a, int64_t T) {
  const LlamaHyper& h = model_.hyper_;
  const Device d = model_.backend().device();
  auto act = [&](int64_t cols) { return Tensor::empty({T, cols}, model_.dtype_, d, MemoryCategory::activations); };
  auto f32 = [&](const Shape& shape) { return Tensor::empty(shape, DType::f32, d, MemoryCategory::activations); };
  a.attn_norm_rstd = f32({T});
  a.attn_norm_out = act(h.hidden);
  a.q = act(h.heads * h.head_dim);
  a.k = act(h.kv_heads * h.head_dim);
  a.v = act(h.kv_heads * h.head_dim);
  a.attn_out = act(h.heads * h.head_dim);
  a.attn_lse = f32({h.heads, T});
  a.attn_residual = act(h.hidden);
  a.mlp_norm_rstd = f32({T});
  a.mlp_norm_out = act(h.hidden);
  a.gate = act(h.intermediate);
  a.up = act(h.intermediate);
  a.swiglu_out = act(h.intermediate);
  // input is the caller's tensor; lora_hidden entries are sized by project(), which knows each
  // adapter's rank.
}

LoraDropoutKey LlamaTraining::dropout_key(int64_t layer, int slot) const {
  return {options_.dropout_seed,
          kDropoutDomain | (micro_step_ << 16) | (static_cast<uint64_t>(layer) << 3) | static_cast<uint64_t>(slot)};
}

void LlamaTraining::project(Tensor& y, const Tensor& x, LlamaLinear& linear, int64_t layer, int slot,
                            Tensor* hidden, bool training) {
  model_.project_base(y, x, linear);
  if (!linear.lora) return;
  const Shape shape{x.dim(0), linear.lora->rank()};
  if (hidden->shape() != shape || hidden->device() != x.device())
    *hidden = Tensor::empty(shape, DType::f32, x.device(), MemoryCategory::activations);
  const LoraDropoutKey key = dropout_key(layer, slot);
  lora_forward(model_.backend(), y, x, *linear.lora, training ? &key : nullptr, hidden);
}

void LlamaTraining::project_backward(Tensor& dx, bool accumulate, const Tensor& dy, const Tensor& x,
                                     LlamaLinear& linear, int64_t layer, int slot, const Tensor& hidden) {
  Backend& be = model_.backend();
  Tensor target = accumulate ? Tensor::empty(dx.shape(), dx.dtype(), dx.device(), MemoryCategory::activations) : dx;
  if (linear.is_4bit()) {
    Tensor workspace = model_.workspace_4bit_.reshape({model_.workspace_4bit_.numel()}).rows(0, linear.out * linear.in);
    be.linear_4bit_backward(target, dy, *linear.weight_4bit, workspace);
  } else {
    be.linear_backward(target, dy, linear.weight);
  }
  if (linear.lora) {
    const LoraDropoutKey key = dropout_key(layer, slot);
    lora_backward(be, target, dy, x, hidden, *linear.lora, &key);
  }
  if (accumulate) be.add_forward(dx, dx, target);
}

void LlamaTraining::block_forward(int64_t layer, BlockActivations& a, Tensor& out, const Tokens& tokens,
                                  bool training) {
  const LlamaHyper& h = model_.hyper_;
  LlamaBlock& b = model_.blocks_[static_cast<size_t>(layer)];
  Backend& be = model_.backend();
  const float eps = static_cast<float>(h.rms_norm_eps);
  const int64_t T = tokens.T;
  be.rmsnorm_forward(a.attn_norm_out, a.input, b.input_norm, eps, &a.attn_norm_rstd);
  project(a.q, a.attn_norm_out, b.q, layer, 0, &a.lora_hidden[0], training);
  project(a.k, a.attn_norm_out, b.k, layer, 1, &a.lora_hidden[1], training);
  project(a.v, a.attn_norm_out, b.v, layer, 2, &a.lora_hidden[2], training);
  Tensor q = a.q.reshape({T, h.heads, h.head_dim});
  Tensor k = a.k.reshape({T, h.kv_heads, h.head_dim});
  const Tensor v = a.v.reshape({T, h.kv_heads, h.head_dim});
  be.rope_forward(q, k, tokens.positions, model_.rope_table_);
  Tensor attn = a.attn_out.reshape({T, h.heads, h.head_dim});
  be.attention_packed_forward(attn, &a.attn_lse, q, k, v, tokens.sequence_ids);
  Tensor proj = Tensor::empty({T, h.hidden}, model_.dtype_, be.device(), MemoryCategory::activations);
  project(proj, a.attn_out, b.o, layer, 3, &a.lora_hidden[3], training);
  be.add_forward(a.attn_residual, a.input, proj);
  be.rmsnorm_forward(a.mlp_norm_out, a.attn_residual, b.post_norm, eps, &a.mlp_norm_rstd);
  project(a.gate, a.mlp_norm_out, b.gate, layer, 4, &a.lora_hidden[4], training);
  project(a.up, a.mlp_norm_out, b.up, layer, 5, &a.lora_hidden[5], training);
  be.swiglu_forward(a.swiglu_out, a.gate, a.up);
  project(proj, a.swiglu_out, b.down, layer, 6, &a.lora_hidden[6], training);
  be.add_forward(out, a.attn_residual, proj);
}

void LlamaTraining::block_backward(int64_t layer, BlockActivations& a, Tensor& d_residual, const Tokens& tokens) {
  const LlamaHyper& h = model_.hyper_;
  LlamaBlock& b = model_.blocks_[static_cast<size_t>(layer)];
  Backend& be = model_.backend();
  const float eps = static_cast<float>(h.rms_norm_eps);
  const int64_t T = tokens.T;
  const Device d = be.device();
  auto act = [&](int64_t cols) { return Tensor::empty({T, cols}, model_.dtype_, d, MemoryCategory::activations); };

  // MLP half: x_out = attn_residual + down(swiglu(gate(n), up(n))), n = rmsnorm(attn_residual).
  Tensor d_act = act(h.intermediate), d_gate = act(h.intermediate), d_up = act(h.intermediate);
  project_backward(d_act, false, d_residual, a.swiglu_out, b.down, layer, 6, a.lora_hidden[6]);
  be.swiglu_backward(d_gate, d_up, d_act, a.gate, a.up);
  Tensor d_normed = act(h.hidden), d_norm_input = act(h.hidden);
  project_backward(d_normed, false, d_gate, a.mlp_norm_out, b.gate, layer, 4, a.lora_hidden[4]);
  project_backward(d_normed, true, d_up, a.mlp_norm_out, b.up, layer, 5, a.lora_hidden[5]);
  be.rmsnorm_backward(d_norm_input, d_normed, a.attn_residual, b.post_norm, &a.mlp_norm_rstd, eps);
  be.add_forward(d_residual, d_residual, d_norm_input);

  // Attention half: attn_residual = input + o(attention(rope(q(n)), rope(k(n)), v(n))).
  Tensor d_attn = act(h.heads * h.head_dim);
  project_backward(d_attn, false, d_residual, a.attn_out, b.o, layer, 3, a.lora_hidden[3]);
  Tensor dq = act(h.heads * h.head_dim), dk = act(h.kv_heads * h.head_dim), dv = act(h.kv_heads * h.head_dim);
  Tensor dq3 = dq.reshape({T, h.heads, h.head_dim}), dk3 = dk.reshape({T, h.kv_heads, h.head_dim});
  Tensor dv3 = dv.reshape({T, h.kv_heads, h.head_dim});
  be.attention_packed_backward(dq3, dk3, dv3, d_attn.reshape({T, h.heads, h.head_dim}),
                               a.q.reshape({T, h.heads, h.head_dim}), a.k.reshape({T, h.kv_heads, h.head_dim}),
                               a.v.reshape({T, h.kv_heads, h.head_dim}), a.attn_out.reshape({T, h.heads, h.head_dim}),
                               a.attn_lse, tokens.sequence_ids);
  be.rope_backward(dq3, dk3, tokens.positions, model_.rope_table_);
  project_backward(d_normed, false, dq, a.attn_norm_out, b.q, layer, 0, a.lora_hidden[0]);
  project_backward(d_normed, true, dk, a.attn_norm_out, b.k, layer, 1, a.lora_hidden[1]);
  project_backward(d_normed, true, dv, a.attn_norm_out, b.v, layer, 2, a.lora_hidden[2]);
  be.rmsnorm_backward(d_norm_input, d_normed, a.input, b.input_norm, &a.attn_norm_rstd, eps);
  be.add_forward(d_residual, d_residual, d_norm_input);
}

double LlamaTraining::head(const Tensor& hidden, const Tokens& tokens, float grad_scale, Tensor* d_hidden) {
  const LlamaHyper& h = model_.hyper_;
  Backend& be = model_.backend();
  const float eps = static_cast<float>(h.rms_norm_eps);
  const int64_t T = tokens.T;
  const Device d = be.device();
  Tensor normed = Tensor::empty({T, h.hidden}, model_.dtype_, d, MemoryCategory::activations);
  Tensor rstd = Tensor::empty({T}, DType::f32, d, MemoryCategory::activations);
  be.rmsnorm_forward(normed, hidden, model_.norm_, eps, &rstd);
  Tensor losses = Tensor::empty({T}, DType::f32, d, MemoryCategory::activations);
  Tensor d_normed;
  if (d_hidden != nullptr) d_normed = Tensor::empty({T, h.hidden}, model_.dtype_, d, MemoryCategory::activations);
  LlamaLinear& lm_head = model_.lm_head_;
  const int64_t chunk = std::min(T, options_.loss_chunk_tokens);
  Tensor logits_buffer = Tensor::empty({chunk, h.vocab}, model_.dtype_, d, MemoryCategory::activations);
  for (int64_t first = 0; first < T; first += chunk) {
    const int64_t rows = std::min(chunk, T - first);
    Tensor logits = logits_buffer.rows(0, rows);
    model_.project_base(logits, normed.rows(first, rows), lm_head);
    Tensor chunk_losses = losses.rows(first, rows);
    be.cross_entropy(chunk_losses, d_hidden != nullptr ? &logits : nullptr, logits, tokens.labels.rows(first, rows),
                     grad_scale);
    if (d_hidden == nullptr) continue;
    Tensor d_rows = d_normed.rows(first, rows);
    project_backward(d_rows, false, logits, normed.rows(first, rows), lm_head, -1, 0, Tensor());
  }
  if (d_hidden != nullptr) be.rmsnorm_backward(*d_hidden, d_normed, hidden, model_.norm_, &rstd, eps);
  be.synchronize();  // a bad id, position or label surfaces here
  const Tensor host = losses.to(Device::cpu);
  double sum = 0.0;
  for (int64_t t = 0; t < T; ++t) sum += host.data_as<float>()[t];
  return sum;
}

MicroBatchLoss LlamaTraining::forward_backward(const Batch& batch, float grad_scale, uint64_t micro_step) {
  micro_step_ = micro_step;
  const Tokens tokens = upload(batch);
  const LlamaHyper& h = model_.hyper_;
  Backend& be = model_.backend();
  const int64_t T = tokens.T, L = h.layers;
  auto residual = [&] { return Tensor::empty({T, h.hidden}, model_.dtype_, be.device(), MemoryCategory::activations); };

  // Forward. With checkpointing, inputs[l] is all block l keeps; without, blocks[l] keeps the rest too.
  const bool checkpointing = options_.gradient_checkpointing;
  std::vector<Tensor> inputs(static_cast<size_t>(L) + 1);
  std::vector<BlockActivations> blocks(checkpointing ? 1 : static_cast<size_t>(L));
  for (BlockActivations& a : blocks) allocate(a, T);
  for (Tensor& input : inputs) input = residual();
  be.embedding_forward(inputs[0], tokens.ids, model_.embed_);
  for (int64_t l = 0; l < L; ++l) {
    BlockActivations& a = blocks[checkpointing ? 0 : l];
    a.input = inputs[l];
    block_forward(l, a, inputs[l + 1], tokens, true);
  }

  // Head, then the blocks in reverse; d_residual carries d(loss)/d(residual stream).
  Tensor d_residual = residual();
  MicroBatchLoss result;
  result.loss_sum = head(inputs[L], tokens, grad_scale, &d_residual);
  result.target_tokens = tokens.target_tokens;
  Tensor recomputed_output = checkpointing ? residual() : Tensor();
  for (int64_t l = L - 1; l >= 0; --l) {
    BlockActivations& a = blocks[checkpointing ? 0 : l];
    if (checkpointing) {
      a.input = inputs[l];
      block_forward(l, a, recomputed_output, tokens, true);  // the same dropout masks: same key
    }
    block_backward(l, a, d_residual, tokens);
  }
  be.synchronize();
  return result;
}

MicroBatchLoss LlamaTraining::evaluate(const Batch& batch) {
  const Tokens tokens = upload(batch);
  const LlamaHyper& h = model_.hyper_;
  Backend& be = model_.backend();
  const int64_t T = tokens.T;
  BlockActivations a;
  allocate(a, T);
  Tensor x = Tensor::empty({T, h.hidden}, model_.dtype_, be.device(), MemoryCategory::activations);
  Tensor next = Tensor::empty({T, h.hidden}, model_.dtype_, be.device(), MemoryCategory::activations);
  be.embedding_forward(x, tokens.ids, model_.embed_);
  for (int64_t l = 0; l < h.layers; ++l) {
    a.input = x;
    block_forward(l, a, next, tokens, false);
    std::swap(x, next);
  }
  MicroBatchLoss result;
  result.loss_sum = head(x, tokens, 1.0f, nullptr);
  result.target_tokens = tokens.target_tokens;
  return result;
}

}  // namespace nibble
