// Block layouts from ggml's ggml-common.h and the arithmetic of ggml-quants.c's
// dequantize_row_* (research/formats.md section 7.2), written out per type. Each function takes
// one block and writes its values; the float expressions keep ggml's operation order so the
// values are llama.cpp's bit for bit.
#include "nibble/io/gguf_dequant.h"

#include <cstring>

#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/core/half.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF data is little-endian; so is every host we run on");

namespace nibble {

namespace {

constexpr int64_t kSuperBlock = 256;  // QK_K: values per K-quant super-block

// The fp16 at byte offset `at` of a block.
float half_at(const uint8_t* block, size_t at) {
  fp16_t h;
  std::memcpy(&h.bits, block + at, 2);
  return fp16_to_float(h);
}

// Q4_0, 18 bytes: d; qs[16]. Value j (< 16) is the low nibble of qs[j], value j + 16 the high
// nibble, both offset by 8.
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = half_at(b, 0);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1, 20 bytes: d, m; qs[16]. Unsigned nibbles, value = q * d + m.
void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = half_at(b, 0), m = half_at(b, 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// The fifth bits of Q5_0/Q5_1: bit j of the little-endian u32 qh belongs to value j.
uint32_t high_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return bits;
}

// Q5_0, 22 bytes: d; qh[4]; qs[16]. 5-bit values offset by 16.
void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = half_at(b, 0);
  const uint32_t qh = high_bits(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

// Q5_1, 24 bytes: d, m; qh[4]; qs[16]. Unsigned 5-bit values, value = q * d + m.
void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = half_at(b, 0), m = half_at(b, 2);
  const uint32_t qh = high_bits(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

// Q8_0, 34 bytes: d; int8 qs[32].
void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = half_at(b, 0);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// Q2_K, 84 bytes: scales[16] (low nibble scale, high nibble min, per 16 values); qs[64] (2-bit
// values); d; dmin. Each half of 128 values reads 32 bytes of qs four times, at shifts 0, 2, 4,
// 6; each pass covers 32 values in two groups of 16 with their own scale byte.
void dequant_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = half_at(b, 80), dmin = half_at(b, 82);
  int is = 0;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int group = 0; group < 2; ++group) {
        const uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0F), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * group] >> shift) & 3) - ml;
      }
    }
  }
}

// Q3_K, 110 bytes: hmask[32] (third bits); qs[64] (low 2 bits); scales[12] (sixteen 6-bit
// scales, offset 32); d. Scale s has its low 4 bits in the low (s < 8) or high (s >= 8) nibble
// of byte s % 8, and its top 2 bits in byte 8 + s % 4 at bit 2 * (s / 4). Value order is
// Q2_K's; the third bit of value l (< 32) of pass `shift` in half `half` is bit
// 4 * half + shift / 2 of hmask[l], and a clear bit subtracts 4.
void dequant_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* q = b + 32;
  const uint8_t* packed = b + 96;
  const float d = half_at(b, 108);
  int8_t scales[16];
  for (int s = 0; s < 16; ++s) {
    const int low = s < 8 ? (packed[s] & 0x0F) : (packed[s - 8] >> 4);
    const int high = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
    scales[s] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
  int is = 0;
  uint8_t mask = 1;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
      for (int group = 0; group < 2; ++group) {
        const float dl = d * static_cast<float>(scales[is++]);
        for (int l = 16 * group; l < 16 * group + 16; ++l) {
          const int value = ((q[l] >> shift) & 3) - ((hmask[l] & mask) ? 0 : 4);
          *y++ = dl * static_cast<float>(value);
        }
      }
    }
  }
}

// Q4_K and Q5_K pack eight (scale, min) pairs of 6 bits in 12 bytes: pairs 0-3 are the low 6
// bits of bytes 0-3 (scale) and 4-7 (min); pairs 4-7 take their low 4 bits from the nibbles of
// bytes 8-11 and their top 2 bits from the top bits of bytes 0-3 (scale) and 4-7 (min).
void scale_min_k4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K, 144 bytes: d, dmin; scales[12]; qs[128]. Each 64 values read 32 bytes: the low
// nibbles are values 0-31 (pair 2i), the high nibbles values 32-63 (pair 2i + 1).
void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = half_at(b, 0), dmin = half_at(b, 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int i = 0; i < 4; ++i, q += 32) {
    uint8_t sc, m;
    scale_min_k4(2 * i, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * i + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

// Q5_K, 176 bytes: d, dmin; scales[12]; qh[32]; qs[128]. Q4_K plus a fifth bit: for the i-th 64
// values, bit 2i of qh[l] belongs to the low-nibble value l and bit 2i + 1 to the high one.
void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = half_at(b, 0), dmin = half_at(b, 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48;
  for (int i = 0; i < 4; ++i, q += 32) {
    uint8_t sc, m;
    scale_min_k4(2 * i, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * i + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    const uint8_t bit1 = static_cast<uint8_t>(1u << (2 * i)), bit2 = static_cast<uint8_t>(2u << (2 * i));
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((q[l] & 0x0F) + ((qh[l] & bit1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & bit2) ? 16 : 0)) - m2;
  }
}

// Q6_K, 210 bytes: ql[128] (low 4 bits); qh[64] (top 2 bits); int8 scales[16] (per 16
// values); d. Each half of 128 values uses 64 bytes of ql and 32 of qh: value l + 32k (l < 32,
// k < 4) has its low bits in ql[l + 32 (k % 2)] (low nibble for k < 2, high for k >= 2) and its
// top bits at bit 2k of qh[l]; offset 32.
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b, 208);
  for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

using BlockDequantizer = void (*)(const uint8_t*, float*);

struct TypeEntry {
  GgmlTypeInfo info;
  BlockDequantizer dequant;  // null for the unblocked F32/F16/BF16
};

const TypeEntry kTypes[] = {
    {{GgmlType::f32, "F32", 1, 4}, nullptr},
    {{GgmlType::f16, "F16", 1, 2}, nullptr},
    {{GgmlType::bf16, "BF16", 1, 2}, nullptr},
    {{GgmlType::q4_0, "Q4_0", 32, 18}, dequant_q4_0},
    {{GgmlType::q4_1, "Q4_1", 32, 20}, dequant_q4_1},
    {{GgmlType::q5_0, "Q5_0", 32, 22}, dequant_q5_0},
    {{GgmlType::q5_1, "Q5_1", 32, 24}, dequant_q5_1},
    {{GgmlType::q8_0, "Q8_0", 32, 34}, dequant_q8_0},
    {{GgmlType::q2_k, "Q2_K", kSuperBlock, 84}, dequant_q2_k},
    {{GgmlType::q3_k, "Q3_K", kSuperBlock, 110}, dequant_q3_k},
    {{GgmlType::q4_k, "Q4_K", kSuperBlock, 144}, dequant_q4_k},
    {{GgmlType::q5_k, "Q5_K", kSuperBlock, 176}, dequant_q5_k},
    {{GgmlType::q6_k, "Q6_K", kSuperBlock, 210}, dequant_q6_k},
};

const TypeEntry* find_type(uint32_t id) {
  for (const TypeEntry& e : kTypes)
    if (static_cast<uint32_t>(e.info.type) == id) return &e;
  return nullptr;
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id) {
  const TypeEntry* e = find_type(id);
  if (e == nullptr) return std::nullopt;
  return e->info;
}

std::string ggml_type_name(uint32_t id) {
  // Every id ggml.h has defined, so an error can say "IQ2_XXS" rather than a number.
  static const char* const names[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",    "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",    "Q4_K",           "Q5_K",           "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",   "IQ4_NL",         "IQ3_S",          "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",     "F64",            "IQ1_M",          "BF16",  "Q4_0_4_4 (removed)",
      "Q4_0_4_8 (removed)", "Q4_0_8_8 (removed)", "TQ1_0", "TQ2_0", "IQ4_NL_4_4 (removed)", "IQ4_NL_4_8 (removed)",
      "IQ4_NL_8_8 (removed)", "MXFP4", "NVFP4", "Q1_0", "Q2_0"};
  if (id < sizeof(names) / sizeof(names[0])) return fmt::format("{} ({})", names[id], id);
  return fmt::format("type {}", id);
}

const char* ggml_supported_types() {
  return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";
}

void ggml_dequantize(GgmlType type, const uint8_t* blocks, float* out, int64_t count) {
  const TypeEntry* e = find_type(static_cast<uint32_t>(type));
  NIBBLE_ASSERT(e != nullptr && count >= 0 && count % e->info.block_elements == 0);
  if (count == 0) return;
  switch (type) {
    case GgmlType::f32:
      std::memcpy(out, blocks, static_cast<size_t>(count) * 4);
      return;
    case GgmlType::f16:
      for (int64_t i = 0; i < count; ++i) {
        fp16_t h;
        std::memcpy(&h.bits, blocks + 2 * i, 2);
        out[i] = fp16_to_float(h);
      }
      return;
    case GgmlType::bf16:
      for (int64_t i = 0; i < count; ++i) {
        bf16_t h;
        std::memcpy(&h.bits, blocks + 2 * i, 2);
        out[i] = bf16_to_float(h);
      }
      return;
    default:
      break;
  }
  const int64_t n_blocks = count / e->info.block_elements;
  for (int64_t i = 0; i < n_blocks; ++i)
    e->dequant(blocks + i * e->info.block_bytes, out + i * e->info.block_elements);
}

}  // namespace nibble
