// The CPU reference of every AdamW update nibble has (plain loops; the oracle the CUDA kernels
// are tested against). Tensors are flat float32 arrays of n elements.
#pragma once

#include <cstdint>

#include "nibble/optim/adamw_math.h"

namespace nibble {

constexpr int kOptim8bitBlocksize = 256;     // bnb >= 0.44 (bnb-format.md 5)
constexpr int64_t kOptim8bitMinNumel = 4096;  // smaller tensors keep 32-bit state (min_8bit_size)

// p, m, v: [n] updated in place; g: [n].
void adamw_update_cpu(AdamwRule rule, const AdamwStepScalars& s, float* p, const float* g, float* m, float* v,
                      int64_t n);

// bitsandbytes' blockwise 8-bit AdamW (bnb rule). m_codes, v_codes: [n] uint8 codes over the
// signed / unsigned dynamic map; absmax1, absmax2: [ceil(n/256)] float32, all updated in place.
// Per block: dequantize (code * old absmax), update the states in float32 (a NaN or Inf gradient
// sets both states of its element to 0 and leaves p alone), update p from the unquantized new
// states, new absmax = max |state|, requantize state/absmax with the binary-search rule (a block
// whose absmax is 0 quantizes the states themselves, which are then +-0), then move an m code
// one index toward the sign of m when the chosen code's sign bit differs from m's.
void adamw8bit_update_cpu(const AdamwStepScalars& s, float* p, const float* g, uint8_t* m_codes,
                          uint8_t* v_codes, float* absmax1, float* absmax2, int64_t n);

// The two maps as float arrays, for callers that quantize or dequantize states.
const float* optim_signed_map();    // [256]
const float* optim_unsigned_map();  // [256]

// Requantization of one state value with the block's new absmax; shared with the CUDA kernel.
NIBBLE_HOST_DEVICE inline float optim_scaled(float state, float absmax) {
  return absmax > 0.0f ? NIBBLE_FDIV(state, absmax) : state;
}

}  // namespace nibble
