#include "nibble/core/rng.h"

namespace nibble {

const Philox4x32& Rng::block_of(uint64_t index) {
  const uint64_t block = index >> 2;
  if (block != cached_block_) {
    cached_ = philox_block(seed_, stream_, block);
    cached_block_ = block;
  }
  return cached_;
}

uint32_t Rng::next_uint32() {
  const uint64_t index = offset_++;
  return block_of(index).v[index & 3];
}

float Rng::next_uniform() { return uint32_to_uniform(next_uint32()); }

float Rng::next_uniform(float low, float high) { return low + (high - low) * next_uniform(); }

float Rng::next_normal() {
  const uint64_t index = offset_++;
  const Philox4x32& block = block_of(index);
  const unsigned pair = static_cast<unsigned>(index & 2);
  float n0, n1;
  box_muller(block.v[pair], block.v[pair + 1], n0, n1);
  return (index & 1) ? n1 : n0;
}

void Rng::fill_uniform(float* out, int64_t n, float low, float high) {
  for (int64_t i = 0; i < n; ++i) out[i] = next_uniform(low, high);
}

void Rng::fill_normal(float* out, int64_t n, float mean, float stddev) {
  for (int64_t i = 0; i < n; ++i) out[i] = mean + stddev * next_normal();
}

}  // namespace nibble
