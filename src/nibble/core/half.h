// bf16 and fp16 <-> float conversions, rounding to nearest even exactly as torch does.
// Header-only and usable from host code and CUDA device code alike.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define NIBBLE_HOST_DEVICE __host__ __device__
#else
#define NIBBLE_HOST_DEVICE
#endif

namespace nibble {

// Storage types: 16 bits and nothing else, so tensors of them are plain arrays.
struct bf16_t {
  uint16_t bits;
};
struct fp16_t {
  uint16_t bits;
};
static_assert(sizeof(bf16_t) == 2 && sizeof(fp16_t) == 2, "16-bit storage types");

NIBBLE_HOST_DEVICE inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

NIBBLE_HOST_DEVICE inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays a (quiet) NaN, as c10::BFloat16 does.
NIBBLE_HOST_DEVICE inline bf16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{0x7fc0};
  uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return bf16_t{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

NIBBLE_HOST_DEVICE inline float bf16_to_float(bf16_t h) {
  return bits_float(static_cast<uint32_t>(h.bits) << 16);
}

// IEEE binary16, round to nearest even, with subnormals and overflow to infinity.
NIBBLE_HOST_DEVICE inline fp16_t float_to_fp16(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return fp16_t{static_cast<uint16_t>(sign | 0x7e00u)};  // NaN
  if (a >= 0x477ff000u) return fp16_t{static_cast<uint16_t>(sign | 0x7c00u)};  // >= 65520: inf
  if (a < 0x38800000u) {
    // Subnormal or zero in fp16.
    if (a < 0x33000000u) return fp16_t{sign};  // below half the smallest subnormal
    // value = a * 2^24 in units of the smallest subnormal: mantissa >> (126 - exponent).
    uint32_t exponent = a >> 23;
    uint32_t mantissa = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exponent;  // 14..24 in this range
    uint32_t value = mantissa >> shift;
    uint32_t remainder = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (value & 1u))) value += 1;
    return fp16_t{static_cast<uint16_t>(sign | value)};
  }
  uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
  return fp16_t{static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
}

NIBBLE_HOST_DEVICE inline float fp16_to_float(fp16_t h) {
  uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exponent = (h.bits >> 10) & 0x1fu;
  uint32_t mantissa = h.bits & 0x3ffu;
  if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return bits_float(sign);
    // Subnormal: value = mantissa * 2^-24.
    float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace nibble
