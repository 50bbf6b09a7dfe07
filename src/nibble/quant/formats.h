// The 4-bit and 8-bit code books of bitsandbytes, the float32 decision thresholds, the nibble
// packing order and the rounding rules, defined once for the CPU reference and the CUDA kernels
// (compiled by g++ and nvcc). Every constant is written as a float32 bit pattern taken from
// shared/research/bnb-format.md, so nothing depends on how a compiler parses a decimal.
//
// The tables live in constexpr functions rather than namespace-scope arrays: nvcc cannot read a
// host constexpr array from device code, but it folds a local constexpr array when the index is
// a compile-time constant (unrolled loops); with a run-time index, copy the table to shared
// memory first (the kernels do).
#pragma once

#include <cstdint>

#include "nibble/core/half.h"

namespace nibble {

// ---- NF4 (bnb-format.md 1.1): sorted, so code order is value order; both ends exactly +-1.
NIBBLE_HOST_DEVICE constexpr uint32_t nf4_code_bits(int code) {
  constexpr uint32_t bits[16] = {
      0xbf800000u, 0xbf3239b1u, 0xbf066b30u, 0xbeca32a0u, 0xbe91a24du, 0xbe3d353fu, 0xbdba7871u, 0x00000000u,
      0x3da2faffu, 0x3e24cae3u, 0x3e7c04ddu, 0x3ead033au, 0x3ee1a4b8u, 0x3f1007abu, 0x3f3913b3u, 0x3f800000u,
  };
  return bits[code];
}

// The 15 float32 thresholds of bnb's CUDA decision tree (bnb-format.md 1.4), ascending. Four of
// them (k = 0, 8, 12, 14) are 1 ulp off the float32 midpoint of their two codes because bnb wrote
// them as 16-digit decimals; using midpoints would change bytes.
NIBBLE_HOST_DEVICE constexpr uint32_t nf4_threshold_bits(int k) {
  constexpr uint32_t bits[15] = {
      0xbf591cd9u, 0xbf1c5270u, 0xbeeb8480u, 0xbeadea76u, 0xbe703cecu, 0xbe0d38bcu, 0xbd3a7871u, 0x3d22faffu,
      0x3df64863u, 0x3e5067e0u, 0x3e9582d4u, 0x3ec753f9u, 0x3f006d03u, 0x3f248dafu, 0x3f5c89d9u,
  };
  return bits[k];
}

// ---- FP4 (bnb-format.md 1.1): bit 3 is the sign, bits 2..0 a magnitude index that is NOT in
// value order. Values are raw/12; the stored quant_map has +0.0 at code 8 (Python's `-0` is the
// integer 0) but the CUDA dequantize table yields -0.0 there (sign times zero).
NIBBLE_HOST_DEVICE constexpr uint32_t fp4_magnitude_bits(int magnitude) {
  constexpr uint32_t bits[8] = {
      0x00000000u, 0x3baaaaabu, 0x3f2aaaabu, 0x3f800000u, 0x3eaaaaabu, 0x3f000000u, 0x3e2aaaabu, 0x3e800000u,
  };
  return bits[magnitude];
}

// quant_map as bnb stores it (checkpoints, QuantizedWeight::code): +0.0 at code 8.
NIBBLE_HOST_DEVICE constexpr uint32_t fp4_quant_map_bits(int code) {
  return code == 8 ? 0u : (fp4_magnitude_bits(code & 7) | ((code & 8) ? 0x80000000u : 0u));
}

// What dequantize multiplies by: -0.0 at code 8, as bnb's CUDA table.
NIBBLE_HOST_DEVICE constexpr uint32_t fp4_dequant_bits(int code) {
  return fp4_magnitude_bits(code & 7) | ((code & 8) ? 0x80000000u : 0u);
}

// The 7 magnitude thresholds of bnb's FP4 decision tree (bnb-format.md 1.4), ascending. They are
// not midpoints (0.583333 is 6 ulp low, 0.00260417 14 ulp high); kept as bnb wrote them.
NIBBLE_HOST_DEVICE constexpr uint32_t fp4_threshold_bits(int k) {
  constexpr uint32_t bits[7] = {
      0x3b2aaab9u, 0x3db00000u, 0x3e555555u, 0x3e955555u, 0x3ed55556u, 0x3f155550u, 0x3f555555u,
  };
  return bits[k];
}

// Magnitude bits for the c-th magnitude in value order: [000, 001, 110, 111, 100, 101, 010, 011][c],
// held as 8 nibbles of one word so the device needs no table lookup.
constexpr uint32_t kFp4MagnitudeByRank = 0x32547610u;
NIBBLE_HOST_DEVICE constexpr uint32_t fp4_magnitude_of_rank(int rank) {
  return (kFp4MagnitudeByRank >> (4 * rank)) & 0x7u;
}

// ---- 4-bit rounding (bnb's CUDA dQuantizeNF4 / dQuantizeFP4). s = x * (1/absmax), no clamp.

// code = #{k : s > t_k}: equal to bnb's tree of strict `>` tests. NaN -> 0 (every test false).
NIBBLE_HOST_DEVICE inline uint32_t nf4_quantize_scaled(float s) {
  uint32_t code = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int k = 0; k < 15; ++k) code += s > bits_float(nf4_threshold_bits(k)) ? 1u : 0u;
  return code;
}

// sign = 0b1000 only for s < 0 (so -0.0 and NaN get sign 0); magnitude by strict `>` tests.
NIBBLE_HOST_DEVICE inline uint32_t fp4_quantize_scaled(float s) {
  uint32_t sign = s < 0.0f ? 8u : 0u;
  float a = s < 0.0f ? -s : s;
  int rank = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int k = 0; k < 7; ++k) rank += a > bits_float(fp4_threshold_bits(k)) ? 1 : 0;
  return sign | fp4_magnitude_of_rank(rank);
}

// ---- Nibble packing (bnb-format.md 1.5): two codes a byte, the FIRST element in the HIGH nibble.
// For odd n the last low nibble is the code of a padding 0.0 pushed through the same scaling
// (so NF4 7 and FP4 0, or NF4 0 in an all-zero block where 0 * inf is NaN).
NIBBLE_HOST_DEVICE constexpr uint8_t pack_nibbles(uint32_t first, uint32_t second) {
  return static_cast<uint8_t>((first << 4) | (second & 0xfu));
}
NIBBLE_HOST_DEVICE constexpr uint32_t unpack_nibble(uint8_t byte, int64_t element) {
  return (element & 1) ? (byte & 0xfu) : (byte >> 4);
}

// ---- Signed dynamic 8-bit map (bnb-format.md 2.2 and Appendix A; torch 2.11's linspace).
// 127 negatives, 0.0 at index 127, 127 positives, 1.0 at index 255; there is no -1.
// This is the map a fresh quantizer uses; a loader uses the map stored with the weight.
NIBBLE_HOST_DEVICE constexpr uint32_t signed_dynamic_map_bits(int index) {
  constexpr uint32_t bits[256] = {
      0xbf7e3333u, 0xbf7a999au, 0xbf770000u, 0xbf736666u, 0xbf6fcccdu, 0xbf6c3333u, 0xbf68999au, 0xbf650000u,
      0xbf616666u, 0xbf5dcccdu, 0xbf5a3333u, 0xbf56999au, 0xbf530000u, 0xbf4f6666u, 0xbf4bcccdu, 0xbf483333u,
      0xbf44999au, 0xbf410000u, 0xbf3d6666u, 0xbf39cccdu, 0xbf363334u, 0xbf32999au, 0xbf2f0000u, 0xbf2b6666u,
      0xbf27cccdu, 0xbf243334u, 0xbf20999au, 0xbf1d0000u, 0xbf196666u, 0xbf15cccdu, 0xbf123334u, 0xbf0e999au,
      0xbf0b0000u, 0xbf076666u, 0xbf03ccccu, 0xbf003333u, 0xbef93332u, 0xbef20000u, 0xbeeaccccu, 0xbee3999au,
      0xbedc6666u, 0xbed53333u, 0xbece0000u, 0xbec6ccccu, 0xbebf999au, 0xbeb86666u, 0xbeb13333u, 0xbeaa0000u,
      0xbea2ccccu, 0xbe9b999au, 0xbe946666u, 0xbe8d3334u, 0xbe860000u, 0xbe7d9999u, 0xbe6f3333u, 0xbe60cccdu,
      0xbe526666u, 0xbe440000u, 0xbe35999au, 0xbe273333u, 0xbe18cccdu, 0xbe0a6666u, 0xbdf80000u, 0xbddb3334u,
      0xbdc9eb85u, 0xbdc428f7u, 0xbdbe6667u, 0xbdb8a3d7u, 0xbdb2e148u, 0xbdad1eb8u, 0xbda75c2au, 0xbda1999au,
      0xbd9bd70au, 0xbd96147bu, 0xbd9051ebu, 0xbd8a8f5du, 0xbd84cccdu, 0xbd7e147bu, 0xbd728f5du, 0xbd670a3du,
      0xbd5b851fu, 0xbd500000u, 0xbd447ae1u, 0xbd38f5c3u, 0xbd2d70a3u, 0xbd21eb85u, 0xbd166667u, 0xbd0ae148u,
      0xbcfeb852u, 0xbce7ae15u, 0xbcd0a3d7u, 0xbcb9999au, 0xbca28f5du, 0xbc8b851fu, 0xbc68f5c3u, 0xbc3ae148u,
      0xbc1f3b64u, 0xbc160418u, 0xbc0ccccdu, 0xbc039581u, 0xbbf4bc6au, 0xbbe24dd3u, 0xbbcfdf3bu, 0xbbbd70a4u,
      0xbbab020du, 0xbb989374u, 0xbb8624ddu, 0xbb676c8au, 0xbb428f5cu, 0xbb1db22du, 0xbaf1a9fcu, 0xbaa7ef9du,
      0xba7765ffu, 0xba59e83eu, 0xba3c6a80u, 0xba1eecc1u, 0xba016f01u, 0xb9c7e283u, 0xb98ce705u, 0xb923d70bu,
      0xb8ba1f4bu, 0xb88aefb3u, 0xb8378034u, 0xb7b24206u, 0xb70205ffu, 0xb65a1a94u, 0xb513a3b7u, 0x00000000u,
      0x3513a3b7u, 0x365a1a94u, 0x370205ffu, 0x37b24206u, 0x38378034u, 0x388aefb3u, 0x38ba1f4bu, 0x3923d70bu,
      0x398ce705u, 0x39c7e283u, 0x3a016f01u, 0x3a1eecc1u, 0x3a3c6a80u, 0x3a59e83eu, 0x3a7765ffu, 0x3aa7ef9du,
      0x3af1a9fcu, 0x3b1db22du, 0x3b428f5cu, 0x3b676c8au, 0x3b8624ddu, 0x3b989374u, 0x3bab020du, 0x3bbd70a4u,
      0x3bcfdf3bu, 0x3be24dd3u, 0x3bf4bc6au, 0x3c039581u, 0x3c0ccccdu, 0x3c160418u, 0x3c1f3b64u, 0x3c3ae148u,
      0x3c68f5c3u, 0x3c8b851fu, 0x3ca28f5du, 0x3cb9999au, 0x3cd0a3d7u, 0x3ce7ae15u, 0x3cfeb852u, 0x3d0ae148u,
      0x3d166667u, 0x3d21eb85u, 0x3d2d70a3u, 0x3d38f5c3u, 0x3d447ae1u, 0x3d500000u, 0x3d5b851fu, 0x3d670a3du,
      0x3d728f5du, 0x3d7e147bu, 0x3d84cccdu, 0x3d8a8f5du, 0x3d9051ebu, 0x3d96147bu, 0x3d9bd70au, 0x3da1999au,
      0x3da75c2au, 0x3dad1eb8u, 0x3db2e148u, 0x3db8a3d7u, 0x3dbe6667u, 0x3dc428f7u, 0x3dc9eb85u, 0x3ddb3334u,
      0x3df80000u, 0x3e0a6666u, 0x3e18cccdu, 0x3e273333u, 0x3e35999au, 0x3e440000u, 0x3e526666u, 0x3e60cccdu,
      0x3e6f3333u, 0x3e7d9999u, 0x3e860000u, 0x3e8d3334u, 0x3e946666u, 0x3e9b999au, 0x3ea2ccccu, 0x3eaa0000u,
      0x3eb13333u, 0x3eb86666u, 0x3ebf999au, 0x3ec6ccccu, 0x3ece0000u, 0x3ed53333u, 0x3edc6666u, 0x3ee3999au,
      0x3eeaccccu, 0x3ef20000u, 0x3ef93332u, 0x3f003333u, 0x3f03ccccu, 0x3f076666u, 0x3f0b0000u, 0x3f0e999au,
      0x3f123334u, 0x3f15cccdu, 0x3f196666u, 0x3f1d0000u, 0x3f20999au, 0x3f243334u, 0x3f27cccdu, 0x3f2b6666u,
      0x3f2f0000u, 0x3f32999au, 0x3f363334u, 0x3f39cccdu, 0x3f3d6666u, 0x3f410000u, 0x3f44999au, 0x3f483333u,
      0x3f4bcccdu, 0x3f4f6666u, 0x3f530000u, 0x3f56999au, 0x3f5a3333u, 0x3f5dcccdu, 0x3f616666u, 0x3f650000u,
      0x3f68999au, 0x3f6c3333u, 0x3f6fcccdu, 0x3f736666u, 0x3f770000u, 0x3f7a999au, 0x3f7e3333u, 0x3f800000u,
  };
  return bits[index];
}

constexpr int kDynamicMapSize = 256;
constexpr int kDoubleQuantBlocksize = 256;  // nested blocks of absmax values (bnb-format.md 2.1)

// The 8-bit rounding of bnb's CUDA dQuantize<0> (bnb-format.md 2.3): a 7-step binary search over
// a sorted 256-entry map, then a comparison with the float32 midpoint on the side s lies. The
// final pivot is always even, so this is "nearest, exact ties to the even index"; plain "nearest,
// ties to lower" differs. `map` may be any sorted table (shared memory on the device).
NIBBLE_HOST_DEVICE inline uint32_t quantize_8bit_search(const float* map /* [256] */, float s) {
  int pivot = 127;
  int upper_pivot = 255;
  int lower_pivot = 0;
  float lower = -1.0f;
  float upper = 1.0f;
  for (int step = 64; step >= 1; step >>= 1) {
    if (s > map[pivot]) {
      lower_pivot = pivot;
      lower = map[pivot];
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = map[pivot];
      pivot -= step;
    }
  }
  if (upper_pivot == 255) upper = map[255];
  if (lower_pivot == 0) lower = map[0];
  float value = map[pivot];
  // Midpoints are float32 sums then a float32 halving, as bnb's kernel computes them.
  if (s > value) {
    float midpoint = (upper + value) * 0.5f;
    return static_cast<uint32_t>(s > midpoint ? upper_pivot : pivot);
  }
  float midpoint = (lower + value) * 0.5f;
  return static_cast<uint32_t>(s < midpoint ? lower_pivot : pivot);
}

static_assert(nf4_code_bits(0) == 0xbf800000u && nf4_code_bits(15) == 0x3f800000u, "NF4 ends are -1 and +1");
static_assert(nf4_code_bits(7) == 0u, "NF4 code 7 is +0.0");
static_assert(fp4_dequant_bits(8) == 0x80000000u && fp4_quant_map_bits(8) == 0u, "FP4 code 8: -0.0 / +0.0");
static_assert(fp4_magnitude_of_rank(0) == 0 && fp4_magnitude_of_rank(2) == 6 && fp4_magnitude_of_rank(7) == 3,
              "FP4 magnitude order");
static_assert(signed_dynamic_map_bits(127) == 0u && signed_dynamic_map_bits(255) == 0x3f800000u,
              "signed dynamic map: 0 at 127, 1.0 at 255");
static_assert(pack_nibbles(0xa, 0x5) == 0xa5 && unpack_nibble(0xa5, 0) == 0xa && unpack_nibble(0xa5, 1) == 0x5,
              "first element in the high nibble");

}  // namespace nibble
