// Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC'11), written from the paper's definition. A counter-based
// generator has no state to carry: value i of a stream is a pure function of (seed, stream, i),
// so a CUDA thread, a CPU thread or a loop all get the same numbers for the same index, whatever
// the number of threads or the order they run in.
//
// Layout of one draw: key = the 64-bit seed (low word first); counter = (index / 4 as 64 bits,
// stream as 64 bits), low words first. One Philox block gives the four 32-bit values of indices
// 4k .. 4k+3 of the stream.
//
// The integer and uniform streams are bit-identical on host and device. normal() calls logf,
// sqrtf and sincosf, whose device versions differ from the host's libm by a few ulps (CUDA
// Programming Guide, "Mathematical Functions": logf 1 ulp, sinf/cosf 2 ulp), so normals agree to a
// few ulps, not bit for bit.
#pragma once

#include <math.h>
#include <cstdint>

#include "nibble/core/half.h"  // NIBBLE_HOST_DEVICE

namespace nibble {

struct Philox4x32 {
  uint32_t v[4];
};

namespace philox_detail {
// The round multipliers and Weyl key increments of Philox4x32 (SC'11, section 5; the Weyl
// constants are the golden ratio and sqrt(3) - 1 as 32-bit fractions).
constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;
constexpr uint32_t kW1 = 0xBB67AE85u;

NIBBLE_HOST_DEVICE inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}
}  // namespace philox_detail

// The bijection itself: 10 rounds, round i keyed with key + i * (W0, W1).
NIBBLE_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 counter, uint32_t key0, uint32_t key1) {
  using namespace philox_detail;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += kW0;
      key1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, counter.v[0], hi0, lo0);
    mulhilo(kM1, counter.v[2], hi1, lo1);
    counter = Philox4x32{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
  }
  return counter;
}

// The block holding indices 4 * block .. 4 * block + 3 of (seed, stream).
NIBBLE_HOST_DEVICE inline Philox4x32 philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
  Philox4x32 counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                      static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The top 24 bits as k * 2^-24: every float in [0, 1) that is a multiple of 2^-24, each equally
// likely, exactly representable, never 1.
NIBBLE_HOST_DEVICE inline float uint32_to_uniform(uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}

// Box-Muller: two 32-bit values -> two independent N(0, 1). The radius uses (k + 1) * 2^-24 in
// (0, 1] so log never sees 0; the angle uses k * 2^-24 in [0, 1).
NIBBLE_HOST_DEVICE inline void box_muller(uint32_t x0, uint32_t x1, float& n0, float& n1) {
  const float u0 = static_cast<float>((x0 >> 8) + 1u) * (1.0f / 16777216.0f);
  const float u1 = uint32_to_uniform(x1);
  const float radius = sqrtf(-2.0f * logf(u0));
  const float angle = 6.283185307179586f * u1;  // 2 pi
  n0 = radius * cosf(angle);
  n1 = radius * sinf(angle);
}

NIBBLE_HOST_DEVICE inline uint32_t philox_uint32_at(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox_block(seed, stream, index >> 2).v[index & 3];
}

// Uniform in [0, 1) at `index` of the stream.
NIBBLE_HOST_DEVICE inline float philox_uniform_at(uint64_t seed, uint64_t stream, uint64_t index) {
  return uint32_to_uniform(philox_uint32_at(seed, stream, index));
}

// N(0, 1) at `index`: indices 2j and 2j+1 are the Box-Muller pair of values 2j and 2j+1.
NIBBLE_HOST_DEVICE inline float philox_normal_at(uint64_t seed, uint64_t stream, uint64_t index) {
  const Philox4x32 block = philox_block(seed, stream, index >> 2);
  const unsigned pair = static_cast<unsigned>(index & 2);
  float n0, n1;
  box_muller(block.v[pair], block.v[pair + 1], n0, n1);
  return (index & 1) ? n1 : n0;
}

// A sequential reader of one stream for host code: next_*() returns value offset() of the
// stream and advances by one, so Rng(seed, stream, i).next_uniform() == philox_uniform_at(seed,
// stream, i). Normals consume one index each, as philox_normal_at numbers them.
class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0, uint64_t offset = 0)
      : seed_(seed), stream_(stream), offset_(offset) {}

  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }

  uint32_t next_uint32();
  float next_uniform();                      // [0, 1)
  float next_uniform(float low, float high);  // low + (high - low) * [0, 1)
  float next_normal();                       // N(0, 1)

  // The next n values into out[n], as n calls of the scalar form would give them.
  void fill_uniform(float* out, int64_t n, float low, float high);
  void fill_normal(float* out, int64_t n, float mean, float stddev);

 private:
  const Philox4x32& block_of(uint64_t index);

  uint64_t seed_;
  uint64_t stream_;
  uint64_t offset_;
  // The last block computed, so four consecutive draws cost one Philox call.
  uint64_t cached_block_ = ~uint64_t{0};
  Philox4x32 cached_{};
};

}  // namespace nibble
