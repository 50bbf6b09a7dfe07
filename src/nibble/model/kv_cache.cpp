#include "nibble/model/kv_cache.h"

#include <memory>

namespace nibble {

KvCache::KvCache(int64_t layers, int64_t max_seq, int64_t kv_heads, int64_t head_dim, DType dtype, Device device)
    : capacity_(max_seq), kv_heads_(kv_heads), head_dim_(head_dim), dtype_(dtype), device_(device) {
  NIBBLE_CHECK(layers > 0 && max_seq > 0 && kv_heads > 0 && head_dim > 0,
               "KV cache: layers {}, max_seq {}, kv_heads {}, head_dim {}; expected all positive", layers, max_seq,
               kv_heads, head_dim);
  for (int64_t i = 0; i < layers; ++i) {
    // Attention activations of inference; `nibble memory` counts them as activations too.
    keys_.push_back(Tensor::empty({max_seq, kv_heads, head_dim}, dtype, device, MemoryCategory::activations));
    values_.push_back(Tensor::empty({max_seq, kv_heads, head_dim}, dtype, device, MemoryCategory::activations));
  }
}

Tensor KvCache::rows(const Tensor& all, int64_t layer, int64_t start, int64_t count) const {
  NIBBLE_ASSERT(layer >= 0 && layer < layers() && start >= 0 && count >= 0 && start + count <= capacity_);
  const size_t row_bytes = static_cast<size_t>(kv_heads_ * head_dim_) * dtype_size(dtype_);
  auto owner = std::make_shared<Tensor>(all);  // keeps the layer's storage alive while the view lives
  void* data = static_cast<char*>(owner->data()) + static_cast<size_t>(start) * row_bytes;
  return Tensor::from_external(data, {count, kv_heads_, head_dim_}, dtype_, device_, owner);
}

Tensor KvCache::keys(int64_t layer, int64_t start, int64_t count) const {
  return rows(keys_.at(static_cast<size_t>(layer)), layer, start, count);
}

Tensor KvCache::values(int64_t layer, int64_t start, int64_t count) const {
  return rows(values_.at(static_cast<size_t>(layer)), layer, start, count);
}

void KvCache::check_room(int64_t count) const {
  NIBBLE_CHECK(length_ + count <= capacity_,
               "KV cache full: {} positions cached + {} new > its capacity of {} (raise the maximum sequence "
               "length)", length_, count, capacity_);
}

void KvCache::advance(int64_t count) {
  check_room(count);
  length_ += count;
}

size_t KvCache::nbytes() const {
  size_t total = 0;
  for (const Tensor& t : keys_) total += t.nbytes();
  for (const Tensor& t : values_) total += t.nbytes();
  return total;
}

}  // namespace nibble
