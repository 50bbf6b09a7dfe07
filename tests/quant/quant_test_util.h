// Helpers shared by the quant/ tests: hex strings of packed bytes, float neighbours, random
// weights whose block absmax are powers of two, and the "adjacent code near a threshold" check
// that bounds where an IEEE and an approximate reciprocal may disagree (bnb-format.md 1.3).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "nibble/core/half.h"
#include "nibble/quant/formats.h"
#include "nibble/quant/quant_state.h"

namespace nibble::quant_test {

inline std::string to_hex(const uint8_t* bytes, size_t count) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < count; ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 0xf];
  }
  return s;
}

inline float up(float x) { return std::nextafter(x, INFINITY); }
inline float down(float x) { return std::nextafter(x, -INFINITY); }

// Distance in float32 steps between two finite floats of the same sign.
inline int64_t ulp_distance(float a, float b) {
  auto key = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : static_cast<int64_t>(i);
  };
  int64_t d = key(a) - key(b);
  return d < 0 ? -d : d;
}

// Values x = a_b * u with a_b = 2^k per block and one element of each block exactly +-a_b, so
// absmax is a power of two and 1/absmax is exact on both CPU and GPU.
inline std::vector<float> power_of_two_blocks(int64_t n, int64_t blocksize, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 3);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t begin = 0; begin < n; begin += blocksize) {
    float a = std::ldexp(1.0f, exponent(rng));
    int64_t end = std::min(n, begin + blocksize);
    for (int64_t i = begin; i < end; ++i) x[i] = a * u(rng);
    x[begin + static_cast<int64_t>(rng() % static_cast<uint32_t>(end - begin))] = (rng() & 1) ? a : -a;
  }
  return x;
}

// The threshold between neighbouring 4-bit codes lo < hi in value order, or NaN when the codes
// are not neighbours. FP4 neighbours share a sign and differ by one magnitude rank.
inline float threshold_between(QuantType type, uint32_t a, uint32_t b) {
  if (type == QuantType::nf4) {
    uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
    return hi == lo + 1 ? bits_float(nf4_threshold_bits(static_cast<int>(lo))) : NAN;
  }
  if ((a & 8) != (b & 8)) return NAN;
  auto rank = [](uint32_t code) {
    for (int r = 0; r < 8; ++r)
      if (fp4_magnitude_of_rank(r) == (code & 7)) return r;
    return -1;
  };
  int ra = rank(a), rb = rank(b);
  int lo = ra < rb ? ra : rb, hi = ra < rb ? rb : ra;
  return hi == lo + 1 ? bits_float(fp4_threshold_bits(lo)) : NAN;
}

// A code that differs between two quantizers of the same x is acceptable only if it is a
// neighbour and x scaled by the IEEE reciprocal lies within 2 ulp of the threshold between them
// (a 1-ulp reciprocal error moves s by at most ~1 ulp; 2 leaves room for the product's rounding).
inline bool is_near_threshold_neighbour(QuantType type, float x, float absmax, uint32_t a, uint32_t b) {
  float t = threshold_between(type, a, b);
  if (std::isnan(t)) return false;
  float s = x * (1.0f / absmax);
  if (type == QuantType::fp4) s = std::fabs(s);
  return ulp_distance(s, t) <= 2;
}

inline uint32_t nibble_at(const std::vector<uint8_t>& packed, int64_t i) { return unpack_nibble(packed[i / 2], i); }

}  // namespace nibble::quant_test
