// Sizes of a 4-bit weight and its constants. The allocating code in quant/ and io/, and the
// `nibble memory` predictor, all use these functions, so prediction and allocation agree.
// n = number of weight elements, B = block size (bnb-format.md 1.2, 2.1, 2.5).
#pragma once

#include <cstdint>

#include "nibble/quant/formats.h"

namespace nibble {

constexpr int64_t quant_blocks(int64_t n, int64_t blocksize) { return (n + blocksize - 1) / blocksize; }

// Packed codes: two a byte, an odd n padded by one nibble.
constexpr int64_t quant_packed_bytes(int64_t n) { return (n + 1) / 2; }

// Per-tensor tables that travel with every weight: the 16-entry float32 quant_map.
constexpr int64_t kQuantMapBytes = 16 * 4;
// With DQ also the float32 offset and the 256-entry float32 nested map.
constexpr int64_t kDoubleQuantTableBytes = 4 + kDynamicMapSize * 4;

// Constants without DQ: float32 absmax per block, plus the quant_map.
constexpr int64_t quant_constant_bytes(int64_t n, int64_t blocksize) {
  return quant_blocks(n, blocksize) * 4 + kQuantMapBytes;
}

// Constants with DQ: uint8 code per block, float32 nested absmax per 256 blocks, plus the
// quant_map, the offset and the nested map.
constexpr int64_t quant_constant_bytes_double_quant(int64_t n, int64_t blocksize) {
  int64_t blocks = quant_blocks(n, blocksize);
  return blocks + quant_blocks(blocks, kDoubleQuantBlocksize) * 4 + kQuantMapBytes + kDoubleQuantTableBytes;
}

constexpr int64_t quant_constant_bytes(int64_t n, int64_t blocksize, bool double_quant) {
  return double_quant ? quant_constant_bytes_double_quant(n, blocksize) : quant_constant_bytes(n, blocksize);
}

// Everything a quantized weight occupies: packed codes plus constants.
constexpr int64_t quant_total_bytes(int64_t n, int64_t blocksize, bool double_quant) {
  return quant_packed_bytes(n) + quant_constant_bytes(n, blocksize, double_quant);
}

// Bits per parameter of the block constants in the QLoRA paper's count (per-tensor tables
// ignored): 32/B without DQ, 8/B + 32/(256 B) with DQ. B = 64: 0.5 and 0.126953125.
constexpr double quant_constant_bits_per_param(int64_t blocksize, bool double_quant) {
  return double_quant ? 8.0 / blocksize + 32.0 / (static_cast<double>(blocksize) * kDoubleQuantBlocksize)
                      : 32.0 / blocksize;
}

static_assert(quant_packed_bytes(5) == 3 && quant_blocks(70, 64) == 2, "bnb-format.md TV5/TV6 sizes");

}  // namespace nibble
