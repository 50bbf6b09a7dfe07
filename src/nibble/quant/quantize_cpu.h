// The CPU reference of 4-bit quantization and Double Quantization: plain loops over raw
// pointers, each step a separate function so tests can check it alone. n = weight elements,
// B = 4-bit block size, nb = ceil(n / B) blocks, nested blocks of 256 absmax values.
//
// One deliberate difference from bitsandbytes' CUDA bytes: the CPU scales by the IEEE reciprocal
// 1/absmax, while bnb (and our kernels) use the approximate rcp.approx.ftz.f32, which differs by
// 1 ulp for ~13.5 % of absmax values (bnb-format.md 1.3). Where absmax is a power of two both
// are exact and the bytes agree; elsewhere a code can move to its neighbour when the scaled value
// is within an ulp or two of a threshold.
#pragma once

#include <cstdint>

#include "nibble/core/dtype.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// Throws nibble::Error unless B is one of 32, 64, ..., 4096 (bnb 0.50's list).
void quant_check_blocksize(int64_t blocksize, const char* what);

// absmax[b] = max |x| over block b (float32), NaN ignored; a partial last block also sees the
// zeros bnb's kernel pads it with, and a full all-NaN block keeps bnb's start value -FLT_MAX.
void blockwise_absmax_cpu(const float* x /* [n] */, int64_t n, int64_t blocksize, float* absmax /* [nb] */);

// Packs 4-bit codes of x scaled by 1/absmax of its block (absmax as computed above).
void quantize_4bit_codes_cpu(const float* x /* [n] */, const float* absmax /* [nb] */, int64_t n,
                             int64_t blocksize, QuantType type, uint8_t* packed /* [(n+1)/2] */);

// Both steps, from an F32, F16 or BF16 input.
void quantize_4bit_cpu(const void* x /* [n] of dtype */, DType dtype, int64_t n, int64_t blocksize,
                       QuantType type, uint8_t* packed /* [(n+1)/2] */, float* absmax /* [nb] */);

// out[i] = out_dtype(table[code_i] * absmax[i / B]): one float32 product, one rounding (RNE).
void dequantize_4bit_cpu(const uint8_t* packed /* [(n+1)/2] */, const float* absmax /* [nb] */, int64_t n,
                         int64_t blocksize, QuantType type, void* out /* [n] of out_dtype */, DType out_dtype);


// 8-bit blockwise quantization of x over a sorted 256-entry map with bnb's binary-search rule.
void quantize_8bit_blockwise_cpu(const float* x /* [n] */, int64_t n, int64_t blocksize, const float* map /* [256] */,
                                 uint8_t* codes /* [n] */, float* absmax /* [ceil(n/B)] */);

// Double Quantization of absmax: offset = mean, c = absmax - offset, 8-bit blocks of 256 over
// the signed dynamic map. Writes codes [nb], nested_absmax [ceil(nb/256)] and returns the offset.
float double_quantize_cpu(const float* absmax /* [nb] */, int64_t nb, uint8_t* codes /* [nb] */,
                          float* nested_absmax /* [ceil(nb/256)] */);

// absmax_i = fl32(fl32(map[code_i] * nested_absmax[i / 256]) + offset): two roundings, never an FMA.
void dequantize_absmax_cpu(const uint8_t* codes /* [nb] */, const float* nested_absmax /* [ceil(nb/256)] */,
                           const float* map /* [256] */, float offset, int64_t nb, int64_t nested_blocksize,
                           float* absmax /* [nb] */);

// The signed dynamic map of formats.h as floats.
void signed_dynamic_map(float* map /* [256] */);

}  // namespace nibble
