// The KV cache of one sequence: each layer's keys and values at every position seen so far,
// [max_seq, KVH, D] in the activation dtype on the model's device. The model writes the new
// tokens' k/v straight into rows [length, length + T) (the k/v projections' outputs are views of
// those rows), then attention reads rows [0, length + T): nothing is copied.
#pragma once

#include <cstdint>
#include <vector>

#include "nibble/core/tensor.h"

namespace nibble {

class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t layers, int64_t max_seq, int64_t kv_heads, int64_t head_dim, DType dtype, Device device);

  int64_t length() const { return length_; }      // positions already cached
  int64_t capacity() const { return capacity_; }  // max_seq
  int64_t layers() const { return static_cast<int64_t>(keys_.size()); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // Views of rows [start, start + count) of a layer: [count, KVH, D], sharing the cache's storage.
  Tensor keys(int64_t layer, int64_t start, int64_t count) const;
  Tensor values(int64_t layer, int64_t start, int64_t count) const;

  // Throws naming the capacity when `count` more positions do not fit.
  void check_room(int64_t count) const;
  // Marks `count` more positions as cached, once every layer has written them.
  void advance(int64_t count);
  // Forgets every position (a new sequence); the memory is kept.
  void reset() { length_ = 0; }
  size_t nbytes() const;

 private:
  Tensor rows(const Tensor& all, int64_t layer, int64_t start, int64_t count) const;

  std::vector<Tensor> keys_;    // [max_seq, KVH, D] per layer
  std::vector<Tensor> values_;  // [max_seq, KVH, D] per layer
  int64_t capacity_ = 0, kv_heads_ = 0, head_dim_ = 0, length_ = 0;
  DType dtype_ = DType::bf16;
  Device device_ = Device::cpu;
};

}  // namespace nibble
