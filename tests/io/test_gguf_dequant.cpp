// GGUF block dequantization. Two oracles:
//  - a scalar formula here per type: blocks are packed from known fields (scales, mins, integer
//    values) following the layout of ggml-common.h, and each value is computed from its fields
//    in double precision;
//  - tests/golden/gguf/dequant.gguf, random blocks dequantized by gguf-py (llama.cpp's Python
//    package, a separate implementation), which must match bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "io_test_util.h"
#include "nibble/core/half.h"
#include "nibble/io/gguf.h"
#include "nibble/io/gguf_dequant.h"
#include "tests/support/gguf_writer.h"

namespace nibble {
namespace {

using test::ScratchDir;

// One block: its bytes, the value each element must dequantize to, and the magnitude of the
// terms that produced it (for the rounding bound).
struct Block {
  std::string bytes;
  std::vector<double> expected;
  std::vector<double> magnitude;
};

class Fields {
 public:
  explicit Fields(uint64_t seed) : rng_(seed) {}
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  // A scale exactly representable in fp16 (k / 1024, |k| < 2048), so the expected value needs no
  // fp16 rounding of its own.
  double scale(bool positive = false) { return integer(positive ? 1 : -1000, 1000) / 1024.0; }

 private:
  std::mt19937_64 rng_;
};

void put_half(std::string& bytes, size_t at, double value) {
  fp16_t h = float_to_fp16(static_cast<float>(value));
  ASSERT_EQ(static_cast<double>(fp16_to_float(h)), value);
  std::memcpy(bytes.data() + at, &h.bits, 2);
}

void put_u8(std::string& bytes, size_t at, int value) { bytes[at] = static_cast<char>(static_cast<uint8_t>(value)); }
void or_u8(std::string& bytes, size_t at, int value) {
  bytes[at] = static_cast<char>(static_cast<uint8_t>(bytes[at]) | value);
}

// Q4_0 / Q4_1: 32 values, low nibbles first half, high nibbles second half.
Block q4(Fields& f, bool with_min) {
  Block b{std::string(with_min ? 20 : 18, '\0'), {}, {}};
  const double d = f.scale(), m = with_min ? f.scale() : 0.0;
  put_half(b.bytes, 0, d);
  if (with_min) put_half(b.bytes, 2, m);
  const size_t qs = with_min ? 4 : 2;
  for (int j = 0; j < 32; ++j) {
    const int q = f.integer(0, 15);
    or_u8(b.bytes, qs + j % 16, j < 16 ? q : q << 4);
    b.expected.push_back(with_min ? q * d + m : (q - 8) * d);
    b.magnitude.push_back(std::fabs(q * d) + std::fabs(m));
  }
  return b;
}

// Q5_0 / Q5_1: Q4's nibbles plus bit j of the u32 qh as value j's fifth bit.
Block q5(Fields& f, bool with_min) {
  Block b{std::string(with_min ? 24 : 22, '\0'), {}, {}};
  const double d = f.scale(), m = with_min ? f.scale() : 0.0;
  put_half(b.bytes, 0, d);
  if (with_min) put_half(b.bytes, 2, m);
  const size_t qh = with_min ? 4 : 2, qs = qh + 4;
  for (int j = 0; j < 32; ++j) {
    const int q = f.integer(0, 31);
    or_u8(b.bytes, qs + j % 16, j < 16 ? (q & 15) : (q & 15) << 4);
    if (q & 16) or_u8(b.bytes, qh + j / 8, 1 << (j % 8));
    b.expected.push_back(with_min ? q * d + m : (q - 16) * d);
    b.magnitude.push_back(std::fabs(q * d) + std::fabs(m));
  }
  return b;
}

Block q8_0(Fields& f) {
  Block b{std::string(34, '\0'), {}, {}};
  const double d = f.scale();
  put_half(b.bytes, 0, d);
  for (int j = 0; j < 32; ++j) {
    const int q = f.integer(-128, 127);
    put_u8(b.bytes, 2 + j, q);
    b.expected.push_back(q * d);
    b.magnitude.push_back(std::fabs(q * d));
  }
  return b;
}

// Element e of a Q2_K/Q3_K/Q6_K super-block lives in half e / 128, pass (r = e % 128) / 32, at
// byte t = r % 32 of that half's 32 bytes; its scale is the (e / 16)-th.
struct SuperPosition {
  int half, pass, t, group16;
  explicit SuperPosition(int e) : half(e / 128), pass((e % 128) / 32), t(e % 32), group16(e / 16) {}
};

Block q2_k(Fields& f) {
  Block b{std::string(84, '\0'), {}, {}};
  const double d = f.scale(), dmin = f.scale();
  put_half(b.bytes, 80, d);
  put_half(b.bytes, 82, dmin);
  int sc[16], mn[16];
  for (int s = 0; s < 16; ++s) {
    sc[s] = f.integer(0, 15);
    mn[s] = f.integer(0, 15);
    put_u8(b.bytes, s, sc[s] | mn[s] << 4);
  }
  for (int e = 0; e < 256; ++e) {
    const SuperPosition p(e);
    const int q = f.integer(0, 3);
    or_u8(b.bytes, 16 + 32 * p.half + p.t, q << (2 * p.pass));
    b.expected.push_back(d * sc[p.group16] * q - dmin * mn[p.group16]);
    b.magnitude.push_back(std::fabs(d * sc[p.group16] * q) + std::fabs(dmin * mn[p.group16]));
  }
  return b;
}

Block q3_k(Fields& f) {
  Block b{std::string(110, '\0'), {}, {}};
  const double d = f.scale();
  put_half(b.bytes, 108, d);
  int sc[16];
  for (int s = 0; s < 16; ++s) {
    sc[s] = f.integer(0, 63);  // stored with an offset of 32
    or_u8(b.bytes, 96 + s % 8, s < 8 ? (sc[s] & 15) : (sc[s] & 15) << 4);
    or_u8(b.bytes, 96 + 8 + s % 4, (sc[s] >> 4) << (2 * (s / 4)));
  }
  for (int e = 0; e < 256; ++e) {
    const SuperPosition p(e);
    const int q = f.integer(0, 7);  // stored as q - 4: two low bits, and a high bit set when q >= 4
    or_u8(b.bytes, 32 + 32 * p.half + p.t, (q & 3) << (2 * p.pass));
    if (q & 4) or_u8(b.bytes, p.t, 1 << (4 * p.half + p.pass));
    b.expected.push_back(d * (sc[p.group16] - 32) * (q - 4));
    b.magnitude.push_back(std::fabs(b.expected.back()));
  }
  return b;
}

// The 12 bytes of eight 6-bit (scale, min) pairs of Q4_K/Q5_K.
void put_k_scales(std::string& bytes, size_t at, const int sc[8], const int mn[8]) {
  for (int j = 0; j < 4; ++j) {
    put_u8(bytes, at + j, (sc[j] & 63) | (sc[j + 4] >> 4) << 6);
    put_u8(bytes, at + j + 4, (mn[j] & 63) | (mn[j + 4] >> 4) << 6);
    put_u8(bytes, at + j + 8, (sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
  }
}

// Q4_K / Q5_K: element e is in chunk e / 64; the first 32 of a chunk are low nibbles of its 32
// bytes, the next 32 high nibbles; pair 2 * chunk + (which nibble) scales it.
Block q45_k(Fields& f, bool five_bits) {
  Block b{std::string(five_bits ? 176 : 144, '\0'), {}, {}};
  const double d = f.scale(), dmin = f.scale();
  put_half(b.bytes, 0, d);
  put_half(b.bytes, 2, dmin);
  int sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = f.integer(0, 63);
    mn[j] = f.integer(0, 63);
  }
  put_k_scales(b.bytes, 4, sc, mn);
  const size_t qh = 16, qs = five_bits ? 48 : 16;
  for (int e = 0; e < 256; ++e) {
    const int chunk = e / 64, high = (e % 64) / 32, t = e % 32, pair = 2 * chunk + high;
    const int q = f.integer(0, five_bits ? 31 : 15);
    or_u8(b.bytes, qs + 32 * chunk + t, high ? (q & 15) << 4 : (q & 15));
    if (q & 16) or_u8(b.bytes, qh + t, 1 << pair);
    b.expected.push_back(d * sc[pair] * q - dmin * mn[pair]);
    b.magnitude.push_back(std::fabs(d * sc[pair] * q) + std::fabs(dmin * mn[pair]));
  }
  return b;
}

// Q6_K: element e = 128 half + 32 k + l has its low nibble in ql[64 half + l + 32 (k % 2)]
// (low for k < 2, high for k >= 2), its top two bits at bit 2k of qh[32 half + l], and scale
// 8 half + 2k + l / 16.
Block q6_k(Fields& f) {
  Block b{std::string(210, '\0'), {}, {}};
  const double d = f.scale();
  put_half(b.bytes, 208, d);
  int sc[16];
  for (int s = 0; s < 16; ++s) {
    sc[s] = f.integer(-128, 127);
    put_u8(b.bytes, 192 + s, sc[s]);
  }
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    const int q = f.integer(0, 63);  // stored as q - 32
    or_u8(b.bytes, 64 * half + l + 32 * (k % 2), k < 2 ? (q & 15) : (q & 15) << 4);
    or_u8(b.bytes, 128 + 32 * half + l, (q >> 4) << (2 * k));
    const int s = 8 * half + 2 * k + l / 16;
    b.expected.push_back(d * sc[s] * (q - 32));
    b.magnitude.push_back(std::fabs(b.expected.back()));
  }
  return b;
}

struct TypeCase {
  const char* name;
  uint32_t id;
  std::function<Block(Fields&)> make;
};

std::vector<TypeCase> quantized_cases() {
  return {
      {"Q4_0", testing::kGgmlQ4_0, [](Fields& f) { return q4(f, false); }},
      {"Q4_1", testing::kGgmlQ4_1, [](Fields& f) { return q4(f, true); }},
      {"Q5_0", testing::kGgmlQ5_0, [](Fields& f) { return q5(f, false); }},
      {"Q5_1", testing::kGgmlQ5_1, [](Fields& f) { return q5(f, true); }},
      {"Q8_0", testing::kGgmlQ8_0, q8_0},
      {"Q2_K", testing::kGgmlQ2_K, q2_k},
      {"Q3_K", testing::kGgmlQ3_K, q3_k},
      {"Q4_K", testing::kGgmlQ4_K, [](Fields& f) { return q45_k(f, false); }},
      {"Q5_K", testing::kGgmlQ5_K, [](Fields& f) { return q45_k(f, true); }},
      {"Q6_K", testing::kGgmlQ6_K, q6_k},
  };
}

// Every quantized type, through a GGUF file the reader opens: two rows of three blocks each.
TEST(GgufDequant, EveryQuantizedTypeMatchesItsFieldFormula) {
  ScratchDir dir;
  for (const TypeCase& c : quantized_cases()) {
    SCOPED_TRACE(c.name);
    Fields fields(c.id * 7919 + 1);
    std::string data;
    std::vector<double> expected, magnitude;
    int64_t block_elements = 0;
    for (int i = 0; i < 6; ++i) {
      Block b = c.make(fields);
      data += b.bytes;
      expected.insert(expected.end(), b.expected.begin(), b.expected.end());
      magnitude.insert(magnitude.end(), b.magnitude.begin(), b.magnitude.end());
      block_elements = static_cast<int64_t>(b.expected.size());
    }
    testing::GgufWriter w;
    w.add_tensor("t", {static_cast<uint64_t>(3 * block_elements), 2}, c.id, data);
    w.write(dir / "t.gguf");
    GgufFile file = GgufFile::open(dir / "t.gguf");
    const GgufTensorInfo& info = file.tensor("t");
    EXPECT_STREQ(info.type.name, c.name);
    EXPECT_EQ(info.nbytes, data.size());
    Tensor t = file.dequantize(info);
    ASSERT_EQ(t.shape(), (Shape{2, 3 * block_elements}));
    double largest = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      // The value is the float evaluation of at most a product of exact terms and a sum: two
      // roundings, each within 2^-24 of the terms' magnitude.
      const double bound = 2 * std::ldexp(magnitude[i], -24);
      ASSERT_NEAR(t.data_as<float>()[i], expected[i], bound) << "element " << i;
      largest = std::max(largest, std::fabs(expected[i]));
    }
    EXPECT_GT(largest, 0.0);  // the case is not all zeros
  }
}

TEST(GgufDequant, UnblockedTypesAreExact) {
  ScratchDir dir;
  const std::vector<float> values = {0.0f, -1.5f, 3.140625f, 65504.0f, -0.000060975552f, 1e-3f};
  std::string f32(values.size() * 4, '\0'), f16(values.size() * 2, '\0'), bf16(values.size() * 2, '\0');
  std::memcpy(f32.data(), values.data(), f32.size());
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t h = float_to_fp16(values[i]).bits, b = float_to_bf16(values[i]).bits;
    std::memcpy(f16.data() + 2 * i, &h, 2);
    std::memcpy(bf16.data() + 2 * i, &b, 2);
  }
  testing::GgufWriter w;
  w.add_tensor("f32", {6}, testing::kGgmlF32, f32);
  w.add_tensor("f16", {6}, testing::kGgmlF16, f16);
  w.add_tensor("bf16", {3, 2}, testing::kGgmlBF16, bf16);
  w.write(dir / "t.gguf");
  GgufFile file = GgufFile::open(dir / "t.gguf");
  Tensor a = file.dequantize(file.tensor("f32")), b = file.dequantize(file.tensor("f16")),
         c = file.dequantize(file.tensor("bf16"));
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(a.data_as<float>()[i], values[i]);
    EXPECT_EQ(b.data_as<float>()[i], fp16_to_float(float_to_fp16(values[i])));
    EXPECT_EQ(c.data_as<float>()[i], bf16_to_float(float_to_bf16(values[i])));
  }
}

TEST(GgufDequant, TypeTable) {
  EXPECT_FALSE(ggml_type_info(16).has_value());  // IQ2_XXS
  EXPECT_FALSE(ggml_type_info(4).has_value());   // a removed id
  EXPECT_FALSE(ggml_type_info(1000).has_value());
  EXPECT_EQ(ggml_type_name(16), "IQ2_XXS (16)");
  EXPECT_EQ(ggml_type_name(1000), "type 1000");
  // Sizes from ggml-common.h's static_asserts.
  const std::pair<uint32_t, int64_t> sizes[] = {{2, 18}, {3, 20}, {6, 22}, {7, 24}, {8, 34}, {10, 84},
                                                {11, 110}, {12, 144}, {13, 176}, {14, 210}, {30, 2}, {1, 2}, {0, 4}};
  for (auto [id, bytes] : sizes) {
    ASSERT_TRUE(ggml_type_info(id).has_value()) << id;
    EXPECT_EQ(ggml_type_info(id)->block_bytes, bytes) << id;
  }
}

// gguf-py's dequantization of random blocks (make_gguf_golden.py), bit for bit.
TEST(GgufDequant, MatchesGgufPyOnRandomBlocks) {
  GgufFile golden = GgufFile::open(std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/gguf/dequant.gguf");
  EXPECT_EQ(golden.string("golden.script"), "tests/golden/gguf/make_gguf_golden.py");
  int types = 0;
  for (const char* name : {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
                           "Q5_K", "Q6_K"}) {
    SCOPED_TRACE(name);
    const GgufTensorInfo& raw = golden.tensor(std::string(name) + ".raw");
    EXPECT_STREQ(raw.type.name, name);
    Tensor ours = golden.dequantize(raw);
    Tensor theirs = golden.dequantize(golden.tensor(std::string(name) + ".expected"));
    ASSERT_EQ(ours.shape(), theirs.shape());
    int64_t differ = 0, nonzero = 0;
    for (int64_t i = 0; i < ours.numel(); ++i) {
      differ += ours.data_as<float>()[i] != theirs.data_as<float>()[i];
      nonzero += theirs.data_as<float>()[i] != 0.0f;
    }
    EXPECT_EQ(differ, 0);
    EXPECT_GT(nonzero, ours.numel() / 2);
    ++types;
  }
  EXPECT_EQ(types, 13);
}

// Every value type as gguf-py writes it.
TEST(GgufDequant, ReadsMetadataOfEveryTypeAsGgufPyWritesIt) {
  GgufFile g = GgufFile::open(std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/gguf/dequant.gguf");
  EXPECT_EQ(g.integer("golden.u8"), 200);
  EXPECT_EQ(g.integer("golden.i8"), -100);
  EXPECT_EQ(g.integer("golden.u16"), 60000);
  EXPECT_EQ(g.integer("golden.i16"), -30000);
  EXPECT_EQ(g.integer("golden.u32"), 4000000000);
  EXPECT_EQ(g.integer("golden.i32"), -2000000000);
  EXPECT_EQ(g.number("golden.f32"), 0.125);
  EXPECT_TRUE(g.boolean("golden.bool"));
  EXPECT_EQ(g.string("golden.string"), "h\xc3\xa9llo \xe2\x9c\x93");
  EXPECT_EQ(g.integer("golden.u64"), INT64_MAX);
  EXPECT_EQ(g.integer("golden.i64"), -(int64_t{1} << 62));
  EXPECT_EQ(g.number("golden.f64"), -2.5e-300);
  EXPECT_EQ(g.string_array("golden.strings"), (std::vector<std::string>{"a", "", "\xc4\xa0" "b c"}));
  EXPECT_EQ(g.integer_array("golden.i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g.number_array("golden.f32s"), (std::vector<double>{0.5, -1.0}));
  EXPECT_EQ(g.type_of("golden.i64"), "i64");
}

}  // namespace
}  // namespace nibble
