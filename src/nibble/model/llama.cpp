#include "nibble/model/llama.h"

#include <algorithm>
#include <memory>

#include "nibble/quant/quantize.h"

namespace nibble {

namespace {

// The tensor `t` (on the CPU, as the file holds it) in `dtype` on `device`. A CPU tensor already
// in the right dtype is used as it is (a view of the mapped file).
Tensor place(const Tensor& t, DType dtype, Device device, MemoryCategory category, Backend& cpu) {
  Tensor converted = t;
  if (t.dtype() != dtype) {
    converted = Tensor::empty(t.shape(), dtype, Device::cpu, category);
    cpu.cast(converted, t);
  }
  return device == Device::cpu ? converted : converted.to(device, category);
}

QuantizedWeight place_4bit(const QuantizedWeight& w, Device device) {
  if (device == Device::cpu) return w;
  QuantizedWeight d = w;
  d.packed = w.packed.to(device, MemoryCategory::base_weights);
  d.code = w.code.to(device, MemoryCategory::quant_constants);
  d.absmax = w.absmax.to(device, MemoryCategory::quant_constants);
  if (w.double_quant) {
    d.nested_absmax = w.nested_absmax.to(device, MemoryCategory::quant_constants);
    d.nested_code = w.nested_code.to(device, MemoryCategory::quant_constants);
  }
  return d;
}

// A view of row `row` of a [T, C] tensor as [1, C], sharing its storage.
Tensor row_view(const Tensor& t /* [T, C] */, int64_t row) {
  auto owner = std::make_shared<Tensor>(t);
  const size_t row_bytes = static_cast<size_t>(t.dim(1)) * dtype_size(t.dtype());
  void* data = static_cast<char*>(owner->data()) + static_cast<size_t>(row) * row_bytes;
  return Tensor::from_external(data, {1, t.dim(1)}, t.dtype(), t.device(), owner);
}

// A host view of `values` as I32 [n] (no copy).
Tensor host_i32(const std::vector<int32_t>& values) {
  return Tensor::from_external(const_cast<int32_t*>(values.data()), {static_cast<int64_t>(values.size())},
                               DType::i32, Device::cpu, nullptr);
}

}  // namespace

LlamaModel LlamaModel::load(const std::string& dir, Backend& backend, const LlamaLoadOptions& options) {
  LlamaCheckpoint ck = read_llama_checkpoint(dir);
  const bool to_4bit = ck.prequantized || options.quantize.has_value();
  NIBBLE_CHECK(!(ck.prequantized && options.quantize.has_value()),
               "{}: already 4-bit (config.json has a quantization_config); load it without quantize-on-load, or "
               "give the original 16-bit folder", dir);
  LlamaModel m;
  m.hyper_ = ck.hyper;
  m.backend_ = &backend;
  m.dtype_ = options.compute_dtype.value_or(to_4bit ? DType::bf16 : ck.storage_dtype);
  NIBBLE_CHECK(m.dtype_ == DType::f32 || m.dtype_ == DType::f16 || m.dtype_ == DType::bf16,
               "compute dtype {}: expected F32, F16 or BF16", dtype_safetensors_name(m.dtype_));
  const Device device = backend.device();
  std::unique_ptr<Backend> cpu = make_cpu_backend();

  int64_t workspace_elements = 0;
  auto linear = [&](const LlamaCheckpointLinear& c, bool quantizable) {
    LlamaLinear l;
    l.name = c.name;
    l.out = c.out;
    l.in = c.in;
    if (c.weight_4bit) {
      l.weight_4bit = place_4bit(*c.weight_4bit, device);
    } else if (quantizable && options.quantize) {
      Tensor w = place(c.weight, m.dtype_, device, MemoryCategory::workspace, *cpu);
      l.weight_4bit = quantize_4bit(w, *options.quantize);
    } else {
      l.weight = place(c.weight, m.dtype_, device, MemoryCategory::base_weights, *cpu);
    }
    if (l.is_4bit()) workspace_elements = std::max(workspace_elements, l.out * l.in);
    if (c.bias.defined() && c.bias.numel() > 0)
      l.bias = place(c.bias, m.dtype_, device, MemoryCategory::unquantized, *cpu);
    return l;
  };

  m.embed_ = place(ck.embed, m.dtype_, device, MemoryCategory::unquantized, *cpu);
  for (const LlamaCheckpointBlock& c : ck.blocks) {
    LlamaBlock b;
    b.input_norm = place(c.input_norm, m.dtype_, device, MemoryCategory::unquantized, *cpu);
    b.q = linear(c.q, true);
    b.k = linear(c.k, true);
    b.v = linear(c.v, true);
    b.o = linear(c.o, true);
    b.post_norm = place(c.post_norm, m.dtype_, device, MemoryCategory::unquantized, *cpu);
    b.gate = linear(c.gate, true);
    b.up = linear(c.up, true);
    b.down = linear(c.down, true);
    m.blocks_.push_back(std::move(b));
  }
  m.norm_ = place(ck.norm, m.dtype_, device, MemoryCategory::unquantized, *cpu);
  if (ck.hyper.tied_embeddings) {
    m.lm_head_.name = ck.lm_head.name;
    m.lm_head_.out = ck.lm_head.out;
    m.lm_head_.in = ck.lm_head.in;
    m.lm_head_.weight = m.embed_;  // one copy on the device, as transformers ties them
  } else {
    m.lm_head_ = linear(ck.lm_head, false);  // lm_head stays 16-bit, as transformers leaves it
  }
  m.finish_setup(workspace_elements);
  return m;
}

void LlamaModel::finish_setup(int64_t workspace_elements) {
  if (workspace_elements > 0)
    workspace_4bit_ = Tensor::empty({workspace_elements}, dtype_, backend_->device(), MemoryCategory::workspace);
}

bool LlamaModel::has_4bit_weights() const { return workspace_4bit_.numel() > 0; }

size_t LlamaModel::weight_bytes() const {
  auto linear_bytes = [](const LlamaLinear& l) {
    size_t n = l.bias.defined() ? l.bias.nbytes() : 0;
    if (!l.is_4bit()) return n + l.weight.nbytes();
    const QuantizedWeight& w = *l.weight_4bit;
    n += w.packed.nbytes() + w.code.nbytes() + w.absmax.nbytes();
    if (w.double_quant) n += w.nested_absmax.nbytes() + w.nested_code.nbytes();
    return n;
  };
  size_t total = embed_.nbytes() + norm_.nbytes();
  for (const LlamaBlock& b : blocks_) {
    total += b.input_norm.nbytes() + b.post_norm.nbytes();
    for (const LlamaLinear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) total += linear_bytes(*l);
  }
  if (!hyper_.tied_embeddings) total += linear_bytes(lm_head_);
  return total;
}

KvCache LlamaModel::make_cache(int64_t max_seq) {
  // Mistral v0.1's sliding window changes nothing until a sequence is longer than the window;
  // past it, keys would have to be dropped, which the attention op does not do yet.
  NIBBLE_CHECK(!hyper_.sliding_window || max_seq <= *hyper_.sliding_window,
               "a sequence of {} positions is longer than the model's sliding_window ({}); sliding-window "
               "attention is not supported, so keep the sequence within the window", max_seq,
               *hyper_.sliding_window);
  ensure_rope_positions(max_seq);
  return KvCache(hyper_.layers, max_seq, hyper_.kv_heads, hyper_.head_dim, dtype_, backend_->device());
}

void LlamaModel::ensure_rope_positions(int64_t positions) {
  if (rope_table_.positions() >= positions) return;
  rope_table_ = rope_table_build(hyper_.rope, hyper_.head_dim, positions, backend_->device());
}

void LlamaModel::prepare_scratch(Scratch& s, int64_t T) {
  if (s.T == T) return;
  const Device d = backend_->device();
  const LlamaHyper& h = hyper_;
  auto act = [&](int64_t rows, int64_t cols) {
    return Tensor::empty({rows, cols}, dtype_, d, MemoryCategory::activations);
  };
  s.T = T;
  s.ids = Tensor::empty({T}, DType::i32, d, MemoryCategory::workspace);
  s.positions = Tensor::empty({T}, DType::i32, d, MemoryCategory::workspace);
  s.x = act(T, h.hidden);
  s.normed = act(T, h.hidden);
  s.q = act(T, h.heads * h.head_dim);
  s.k = act(T, h.kv_heads * h.head_dim);
  s.v = act(T, h.kv_heads * h.head_dim);
  s.attn = act(T, h.heads * h.head_dim);
  s.proj = act(T, h.hidden);
  s.gate = act(T, h.intermediate);
  s.up = act(T, h.intermediate);
  s.last_normed = act(1, h.hidden);
  s.logits_f32 = Tensor::empty({1, h.vocab}, DType::f32, d, MemoryCategory::activations);
  s.logits = dtype_ == DType::f32 ? s.logits_f32 : act(1, h.vocab);
}

void LlamaModel::project(Tensor& y, const Tensor& x, const LlamaLinear& linear) {
  project_base(y, x, linear);
  if (linear.lora) lora_forward(*backend_, y, x, *linear.lora, nullptr, nullptr);
}

LlamaLinear* LlamaModel::find_linear(const std::string& module) {
  for (LlamaLinear* l : block_linears()) {
    if (l->name == module) return l;
  }
  return nullptr;
}

std::vector<LlamaLinear*> LlamaModel::block_linears() {
  std::vector<LlamaLinear*> all;
  for (LlamaBlock& b : blocks_) {
    for (LlamaLinear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) all.push_back(l);
  }
  return all;
}

void LlamaModel::clear_lora() {
  for (LlamaLinear* l : block_linears()) l->lora.reset();
}

void LlamaModel::project_base(Tensor& y, const Tensor& x, const LlamaLinear& linear) {
  const Tensor* bias = linear.bias.defined() && linear.bias.numel() > 0 ? &linear.bias : nullptr;
  if (linear.is_4bit()) {
    Tensor workspace = workspace_4bit_.reshape({workspace_4bit_.numel()});
    Tensor dense = Tensor::from_external(workspace.data(), {linear.out * linear.in}, dtype_, workspace.device(),
                                         std::make_shared<Tensor>(workspace_4bit_));
    backend_->linear_4bit_forward(y, x, *linear.weight_4bit, bias, dense);
  } else {
    backend_->linear_forward(y, x, linear.weight, bias);
  }
}

void LlamaModel::attention_forward(Scratch& s, int64_t layer, KvCache& cache, int64_t T) {
  const LlamaHyper& h = hyper_;
  const LlamaBlock& b = blocks_[static_cast<size_t>(layer)];
  // The whole cache: the new keys and values go into rows positions[t], and query t attends to
  // rows [0, positions[t]]. Positions live on the device, so a recorded step stays valid as the
  // cache grows.
  Tensor k_cache = cache.keys(layer, 0, cache.capacity());    // [P, KVH, D]
  Tensor v_cache = cache.values(layer, 0, cache.capacity());  // [P, KVH, D]
  project(s.q, s.normed, b.q);
  project(s.k, s.normed, b.k);
  project(s.v, s.normed, b.v);
  Tensor q = s.q.reshape({T, h.heads, h.head_dim});
  Tensor k = s.k.reshape({T, h.kv_heads, h.head_dim});
  Tensor v = s.v.reshape({T, h.kv_heads, h.head_dim});
  backend_->rope_forward(q, k, s.positions, rope_table_);
  backend_->kv_cache_write(k_cache, v_cache, k, v, s.positions);
  Tensor attn = s.attn.reshape({T, h.heads, h.head_dim});
  backend_->attention_cached_forward(attn, q, k_cache, v_cache, s.positions);
  project(s.proj, s.attn, b.o);
}

void LlamaModel::mlp_forward(Scratch& s, int64_t layer) {
  const LlamaBlock& b = blocks_[static_cast<size_t>(layer)];
  project(s.gate, s.normed, b.gate);
  project(s.up, s.normed, b.up);
  backend_->swiglu_forward(s.gate, s.gate, s.up);
  project(s.proj, s.gate, b.down);
}

// Each residual add is fused with the norm after it (Backend::add_rmsnorm_forward, the same
// numbers as the two ops): the block starts from s.normed = input_norm(x) and leaves s.proj, the
// MLP's output, for the caller to add.
void LlamaModel::block_forward(Scratch& s, int64_t layer, KvCache& cache, int64_t T) {
  const LlamaBlock& b = blocks_[static_cast<size_t>(layer)];
  attention_forward(s, layer, cache, T);
  backend_->add_rmsnorm_forward(s.x, s.normed, s.proj, b.post_norm, static_cast<float>(hyper_.rms_norm_eps));
  mlp_forward(s, layer);
}

void LlamaModel::issue_forward(Scratch& s, KvCache& cache, int64_t T, bool last_only) {
  const float eps = static_cast<float>(hyper_.rms_norm_eps);
  backend_->embedding_forward(s.x, s.ids, embed_);
  if (hyper_.layers > 0) backend_->rmsnorm_forward(s.normed, s.x, blocks_[0].input_norm, eps);
  bool final_normed = false;  // s.last_normed already holds the final norm of the last row
  for (int64_t layer = 0; layer < hyper_.layers; ++layer) {
    block_forward(s, layer, cache, T);
    if (layer + 1 < hyper_.layers) {
      backend_->add_rmsnorm_forward(s.x, s.normed, s.proj, blocks_[static_cast<size_t>(layer) + 1].input_norm, eps);
    } else if (last_only && T == 1) {
      backend_->add_rmsnorm_forward(s.x, s.last_normed, s.proj, norm_, eps);  // x is the last row
      final_normed = true;
    } else {
      backend_->add_forward(s.x, s.x, s.proj);  // elementwise, so writing over an input is safe
    }
  }
  if (!last_only) return;  // the caller norms and projects every row
  if (!final_normed) backend_->rmsnorm_forward(s.last_normed, row_view(s.x, T - 1), norm_, eps);
  project(s.logits, s.last_normed, lm_head_);
  if (dtype_ != DType::f32) backend_->cast(s.logits_f32, s.logits);
}

bool LlamaModel::replay_decode_step(KvCache& cache) {
  DecodeRecording& r = decode_recording_;
  if (!record_decode_ || r.failed) return false;
  for (const LlamaLinear* l : block_linears())
    if (l->lora) return false;
  if (lm_head_.lora) return false;
  const void* cache_storage = cache.keys(0, 0, 1).data();
  const void* rope_storage = rope_table_.cos.data();
  if (r.model != this || r.cache_storage != cache_storage || r.cache_capacity != cache.capacity() ||
      r.rope_storage != rope_storage) {
    r = DecodeRecording{};
    r.model = this;
    r.cache_storage = cache_storage;
    r.cache_capacity = cache.capacity();
    r.rope_storage = rope_storage;
  }
  if (!r.recording) {
    // The first step on a cache is issued op by op: it also makes every lazy setup (library
    // handles, kernel attributes) happen outside the recording.
    if (r.plain_steps++ == 0) return false;
    try {
      // The lambda holds its own handle on the cache's storage (a backend that calls it again at
      // every replay must not depend on the caller's KvCache object living on).
      r.recording = backend_->record([this, recorded = cache]() mutable { issue_forward(decode_, recorded, 1, true); });
    } catch (const Error&) {
      r.failed = true;  // e.g. an op that cannot be captured: keep issuing op by op
      return false;
    }
  }
  backend_->replay(*r.recording);
  return true;
}

Tensor LlamaModel::forward(const std::vector<int32_t>& ids, KvCache& cache, bool last_only) {
  const int64_t T = static_cast<int64_t>(ids.size());
  NIBBLE_CHECK(T > 0, "forward: no tokens; expected at least one id");
  NIBBLE_CHECK(cache.layers() == hyper_.layers && cache.dtype() == dtype_ && cache.device() == backend_->device(),
               "forward: the KV cache ({} layers, {} on {}) was not made for this model ({} layers, {} on {}); use "
               "make_cache()", cache.layers(), dtype_safetensors_name(cache.dtype()), device_name(cache.device()),
               hyper_.layers, dtype_safetensors_name(dtype_), device_name(backend_->device()));
  cache.check_room(T);
  for (int64_t t = 0; t < T; ++t)
    NIBBLE_CHECK(ids[t] >= 0 && ids[t] < hyper_.vocab, "forward: token {} has id {}; expected an id in [0, {}) "
                 "(vocab_size of config.json)", t, ids[t], hyper_.vocab);
  ensure_rope_positions(cache.capacity());
  const bool decode = T == 1 && last_only;
  Scratch& s = decode ? decode_ : scratch_;
  prepare_scratch(s, T);
  std::vector<int32_t> positions(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) positions[t] = static_cast<int32_t>(cache.length() + t);
  s.ids.copy_from(host_i32(ids));
  s.positions.copy_from(host_i32(positions));

  decode_replayed_ = decode && replay_decode_step(cache);
  if (!decode_replayed_) issue_forward(s, cache, T, last_only);
  cache.advance(T);

  Tensor logits;
  if (last_only) {
    // A copy: the scratch row is overwritten by the next call.
    logits = Tensor::empty({1, hyper_.vocab}, DType::f32, backend_->device(), MemoryCategory::activations);
    logits.copy_from(s.logits_f32);
  } else {
    Tensor normed = Tensor::empty({T, hyper_.hidden}, dtype_, backend_->device(), MemoryCategory::activations);
    backend_->rmsnorm_forward(normed, s.x, norm_, static_cast<float>(hyper_.rms_norm_eps));
    logits = Tensor::empty({T, hyper_.vocab}, dtype_, backend_->device(), MemoryCategory::activations);
    project(logits, normed, lm_head_);
    if (dtype_ != DType::f32) {
      Tensor logits_f32 = Tensor::empty({T, hyper_.vocab}, DType::f32, backend_->device(), MemoryCategory::activations);
      backend_->cast(logits_f32, logits);
      logits = logits_f32;
    }
  }
  // A bad token id or position found on a GPU surfaces here, before anyone reads the logits.
  backend_->synchronize();
  return logits;
}

}  // namespace nibble
