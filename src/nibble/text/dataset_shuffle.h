// Deterministic shuffles for datasets: the same seed gives the same order on every machine and
// compiler (no std::shuffle or std::uniform_int_distribution, whose outputs the standard leaves
// to the library).
//
// The generator is core's Philox4x32-10 (core/rng.h), a fixed published function of (seed,
// stream, index). A permutation is Fisher-Yates from the back: for i = n-1 .. 1, swap i with
// j = uniform_below(i + 1), where uniform_below joins two 32-bit draws into a 64-bit value and
// rejects the top partial range so every j is exactly equally likely.
#pragma once

#include <cstdint>
#include <vector>

#include "nibble/core/rng.h"

namespace nibble {

// Philox streams, so the epoch shuffles and the eval split never share numbers: epoch e uses
// kEpochStream + e, the split kSplitStream. ("epoc" and "splt" in ASCII, high word.)
constexpr uint64_t kEpochStream = 0x65706f6300000000ull;
constexpr uint64_t kSplitStream = 0x73706c7400000000ull;

// Uniform in [0, bound), bound >= 1.
uint64_t uniform_below(Rng& rng, uint64_t bound);

// A permutation of 0 .. n-1 drawn from (seed, stream).
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, uint64_t stream);

}  // namespace nibble
