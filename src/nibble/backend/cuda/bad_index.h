// How the index kernels (embedding ids, RoPE positions) report a bad index without making the
// host wait: one 64-bit device word per op kind, lowered with atomicMin, checked at the next
// Backend::synchronize(). The token goes in the high half so the smallest token wins, and the
// offending value travels with it in the low half.
#pragma once

#include <cstdint>

#include "nibble/core/half.h"  // NIBBLE_HOST_DEVICE

namespace nibble::cuda {

constexpr unsigned long long kNoBadIndex = ~0ull;

NIBBLE_HOST_DEVICE inline unsigned long long pack_bad_index(int64_t token, int32_t value) {
  return (static_cast<unsigned long long>(token) << 32) | static_cast<uint32_t>(value);
}

NIBBLE_HOST_DEVICE inline int64_t bad_index_token(unsigned long long packed) {
  return static_cast<int64_t>(packed >> 32);
}

NIBBLE_HOST_DEVICE inline int32_t bad_index_value(unsigned long long packed) {
  return static_cast<int32_t>(static_cast<uint32_t>(packed & 0xffffffffull));
}

}  // namespace nibble::cuda
