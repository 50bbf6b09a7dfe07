// The CPU reference against the test vectors of bnb-format.md section 7 (TV1-TV11; TV12, the
// JSON blob, belongs to io/). Every expected byte here was observed from bnb's CUDA kernels, so
// comparisons are exact. All vectors have power-of-two absmax, where IEEE and rcp.approx agree.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/tensor.h"
#include "nibble/quant/quantize.h"
#include "nibble/quant/quantize_cpu.h"
#include "nibble/quant/torch_mean.h"
#include "nibble/quant/sizes.h"
#include "quant_test_util.h"

using namespace nibble;
using namespace nibble::quant_test;

namespace {

float nf4(int c) { return bits_float(nf4_code_bits(c)); }

struct Result {
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
  std::string hex() const { return to_hex(packed.data(), packed.size()); }
};

Result quantize(const std::vector<float>& x, QuantType type, int64_t blocksize = 64) {
  int64_t n = static_cast<int64_t>(x.size());
  Result r;
  r.packed.resize(quant_packed_bytes(n));
  r.absmax.resize(quant_blocks(n, blocksize));
  quantize_4bit_cpu(x.data(), DType::f32, n, blocksize, type, r.packed.data(), r.absmax.data());
  return r;
}

std::vector<float> dequantize(const Result& r, int64_t n, QuantType type, int64_t blocksize = 64) {
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_4bit_cpu(r.packed.data(), r.absmax.data(), n, blocksize, type, out.data(), DType::f32);
  return out;
}

std::string repeat(const std::string& s, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += s;
  return out;
}

}  // namespace

TEST(QuantCpu, TV1CodesInOrder) {
  std::vector<float> x(64);
  for (int k = 0; k < 64; ++k) x[k] = 2.0f * nf4(k % 16);
  Result r = quantize(x, QuantType::nf4);
  EXPECT_EQ(r.absmax, std::vector<float>{2.0f});
  EXPECT_EQ(r.hex(), repeat("0123456789abcdef", 4));
  EXPECT_EQ(dequantize(r, 64, QuantType::nf4), x);  // exact: 2 * code is exact

  // bf16 input and bf16 output.
  std::vector<bf16_t> xb(64);
  for (int k = 0; k < 64; ++k) xb[k] = float_to_bf16(x[k]);
  std::vector<uint8_t> packed(32);
  float absmax = 0;
  quantize_4bit_cpu(xb.data(), DType::bf16, 64, 64, QuantType::nf4, packed.data(), &absmax);
  EXPECT_EQ(to_hex(packed.data(), 32), repeat("0123456789abcdef", 4));
  std::vector<bf16_t> out(64);
  dequantize_4bit_cpu(packed.data(), &absmax, 64, 64, QuantType::nf4, out.data(), DType::bf16);
  const float expected[16] = {-2, -1.390625, -1.046875, -0.7890625, -0.5703125, -0.369140625, -0.181640625, 0,
                              0.1591796875, 0.322265625, 0.4921875, 0.67578125, 0.8828125, 1.125, 1.4453125, 2};
  for (int k = 0; k < 64; ++k) EXPECT_EQ(bf16_to_float(out[k]), expected[k % 16]) << k;
}

TEST(QuantCpu, TV2MidpointTies) {
  std::vector<float> x = {1.0f};
  std::vector<float> m(15);
  for (int k = 0; k < 15; ++k) m[k] = (nf4(k) + nf4(k + 1)) * 0.5f;
  for (float v : m) x.push_back(v);
  for (float v : m) x.push_back(up(v));
  for (float v : m) x.push_back(down(v));
  x.resize(64, 0.0f);
  EXPECT_EQ(quantize(x, QuantType::nf4).hex(), "f1123456789abddf123456788abcdef0123456789abcde777777777777777777");
}

TEST(QuantCpu, TV3ExactThresholds) {
  std::vector<float> x = {1.0f};
  for (int k = 0; k < 15; ++k) x.push_back(bits_float(nf4_threshold_bits(k)));
  for (int k = 0; k < 15; ++k) x.push_back(up(bits_float(nf4_threshold_bits(k))));
  x.resize(64, 0.0f);
  EXPECT_EQ(quantize(x, QuantType::nf4).hex(), "f0123456789abcde123456789abcdef" + std::string(33, '7'));
}

TEST(QuantCpu, TV4ZeroBlock) {
  std::vector<float> x(64, 0.0f);
  for (QuantType type : {QuantType::nf4, QuantType::fp4}) {
    Result r = quantize(x, type);
    EXPECT_EQ(r.absmax, std::vector<float>{0.0f});
    EXPECT_EQ(r.hex(), std::string(64, '0'));
    for (float v : dequantize(r, 64, type)) {
      EXPECT_EQ(v, 0.0f);
      EXPECT_EQ(std::signbit(v), type == QuantType::nf4);  // NF4: (-1) * 0 = -0.0; FP4: +0.0
    }
  }
}

TEST(QuantCpu, TV5PartialLastBlock) {
  std::vector<float> x(70);
  for (int k = 0; k < 64; ++k) x[k] = static_cast<float>(-1.0 + k * (2.0 / 63.0));  // numpy linspace, then float32
  x[63] = 1.0f;
  const float tail[6] = {0.5f, -0.25f, 0.125f, 0.0f, 0.3f, -0.1f};
  for (int k = 0; k < 6; ++k) x[64 + k] = tail[k];
  Result r = quantize(x, QuantType::nf4);
  EXPECT_EQ(r.absmax, (std::vector<float>{1.0f, 0.5f}));
  EXPECT_EQ(r.packed.size(), 35u);
  EXPECT_EQ(r.hex(), "00000111111112222233344445556667788899aaabbbccccddddeeeeeeeffffff2a7d5");
}

TEST(QuantCpu, TV6OddLengthPadsWithCodeOfZero) {
  Result r = quantize({1.0f, -1.0f, 0.5f, -0.5f, 0.1f}, QuantType::nf4);
  EXPECT_EQ(r.absmax, std::vector<float>{1.0f});
  EXPECT_EQ(r.hex(), "f0c287");
  Result f = quantize({1.0f, -1.0f, 0.5f, -0.5f, 0.1f}, QuantType::fp4);
  EXPECT_EQ(f.packed.back() & 0xf, 0);  // FP4 code of +0.0
}

TEST(QuantCpu, TV7Dequantize) {
  std::vector<float> x;
  for (int k = 0; k < 16; ++k) x.insert(x.end(), {-4.0f, 2.0f, 1.0f, -1.0f});
  Result r = quantize(x, QuantType::nf4);
  EXPECT_EQ(r.absmax, std::vector<float>{4.0f});
  EXPECT_EQ(r.hex(), repeat("0ca4", 16));
  std::vector<float> d = dequantize(r, 64, QuantType::nf4);
  EXPECT_EQ(d[0], -4.0f);
  EXPECT_EQ(d[1], 1.7628393173217773f);
  EXPECT_EQ(d[2], 0.9844492077827454f);
  EXPECT_EQ(d[3], -1.1377655267715454f);
}

TEST(QuantCpu, TV8Fp4Thresholds) {
  std::vector<float> u(7);
  for (int k = 0; k < 7; ++k) u[k] = bits_float(fp4_threshold_bits(k));
  std::vector<float> x = {1.0f};
  for (float v : u) x.push_back(v);
  for (float v : u) x.push_back(up(v));
  for (float v : u) x.push_back(-v);
  for (float v : u) x.push_back(-up(v));
  x.resize(64, 0.0f);
  EXPECT_EQ(quantize(x, QuantType::fp4).hex(), "30167452167452389efcda9efcdab" + std::string(35, '0'));
}

TEST(QuantCpu, TV9DoubleQuantByHand) {
  const int64_t blocks = 256, n = blocks * 64;
  std::vector<float> x(n, 0.0f);
  for (int64_t b = 0; b < blocks; ++b)
    for (int k = 0; k < 16; ++k) x[b * 64 + k] = nf4(k) * (b % 2 == 0 ? 1.0f : 3.0f);
  Tensor weight = Tensor::empty({n}, DType::f32);
  std::copy(x.begin(), x.end(), weight.data_as<float>());
  QuantizedWeight w = quantize_4bit(weight, QuantConfig{QuantType::nf4, 64, true});
  ASSERT_TRUE(w.double_quant);
  EXPECT_EQ(w.offset, 2.0f);
  ASSERT_EQ(w.nested_absmax.numel(), 1);
  EXPECT_EQ(w.nested_absmax.data_as<float>()[0], 1.0f);
  const uint8_t* q = w.absmax.data_as<uint8_t>();
  for (int64_t b = 0; b < blocks; ++b) ASSERT_EQ(q[b], b % 2 == 0 ? 0 : 255) << "block " << b;
  EXPECT_EQ(to_hex(w.packed.data_as<uint8_t>(), 8), "0123456789abcdef");
  Tensor absmax = dequantize_absmax(w);
  EXPECT_EQ(absmax.data_as<float>()[0], 1.0070312023162842f);  // 2 - 0.99296875: -1 is not in the map
  EXPECT_EQ(absmax.data_as<float>()[1], 3.0f);
  Tensor out = dequantize_4bit(w, DType::f32);
  for (int k = 0; k < 16; ++k) EXPECT_EQ(out.data_as<float>()[k], nf4(k) * 1.0070312023162842f) << k;
}

TEST(QuantCpu, TV10EightBitTiesInABlock) {
  float map[kDynamicMapSize];
  signed_dynamic_map(map);
  std::vector<float> x(256);
  for (int i = 0; i < 255; ++i) x[i] = (map[i] + map[i + 1]) * 0.5f;
  x[255] = 1.0f;  // absmax 1, so the scale is exactly 1
  std::vector<uint8_t> codes(256);
  float absmax = 0;
  quantize_8bit_blockwise_cpu(x.data(), 256, 256, map, codes.data(), &absmax);
  EXPECT_EQ(absmax, 1.0f);
  for (int i = 0; i < 255; ++i) EXPECT_EQ(codes[i], i % 2 == 0 ? i : i + 1) << i;
  EXPECT_EQ(codes[255], 255);
}

TEST(QuantCpu, TV11NanAndInfBlocks) {
  std::vector<float> x = {NAN, 0.5f, -0.25f, 1.0f};
  x.resize(64, 0.125f);
  Result r = quantize(x, QuantType::nf4);
  EXPECT_EQ(r.absmax, std::vector<float>{1.0f});
  EXPECT_EQ(r.hex().substr(0, 4), "0c4f");
  EXPECT_EQ(dequantize(r, 64, QuantType::nf4)[0], -1.0f);

  for (float inf : {INFINITY, -INFINITY}) {
    x[0] = inf;
    Result s = quantize(x, QuantType::nf4);
    EXPECT_EQ(s.absmax[0], INFINITY);
    EXPECT_EQ(s.hex(), "0" + std::string(63, '7'));
    std::vector<float> d = dequantize(s, 64, QuantType::nf4);
    EXPECT_EQ(d[0], -INFINITY);
    for (int k = 1; k < 64; ++k) EXPECT_TRUE(std::isnan(d[k])) << k;
  }
}

TEST(QuantCpu, AllNanFullBlockKeepsStartValue) {
  std::vector<float> x(64, NAN);
  Result r = quantize(x, QuantType::nf4);
  EXPECT_EQ(r.absmax[0], -std::numeric_limits<float>::max());
  EXPECT_EQ(r.hex(), std::string(64, '0'));
}

// Dequantize is one float32 product rounded once: the product of two floats is exact in double,
// so the reference is that exact product rounded to float32, then to the 16-bit type.
TEST(QuantCpu, DequantizeIsOneFloat32Product) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> scale(1e-4f, 10.0f);
  for (QuantType type : {QuantType::nf4, QuantType::fp4}) {
    const int64_t n = 4099, blocksize = 128;
    std::vector<uint8_t> packed(quant_packed_bytes(n));
    for (auto& b : packed) b = static_cast<uint8_t>(rng());
    std::vector<float> absmax(quant_blocks(n, blocksize));
    for (auto& a : absmax) a = scale(rng);
    std::vector<float> f32(n);
    std::vector<bf16_t> b16(n);
    std::vector<fp16_t> f16(n);
    dequantize_4bit_cpu(packed.data(), absmax.data(), n, blocksize, type, f32.data(), DType::f32);
    dequantize_4bit_cpu(packed.data(), absmax.data(), n, blocksize, type, b16.data(), DType::bf16);
    dequantize_4bit_cpu(packed.data(), absmax.data(), n, blocksize, type, f16.data(), DType::f16);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t code = nibble_at(packed, i);
      float table = bits_float(type == QuantType::nf4 ? nf4_code_bits(code) : fp4_dequant_bits(code));
      float expected = static_cast<float>(static_cast<double>(table) * static_cast<double>(absmax[i / blocksize]));
      ASSERT_EQ(float_bits(f32[i]), float_bits(expected)) << i;
      ASSERT_EQ(b16[i].bits, float_to_bf16(expected).bits) << i;
      ASSERT_EQ(f16[i].bits, float_to_fp16(expected).bits) << i;
    }
  }
}

// Round trip on power-of-two blocks: every value lands on its nearest code (up to the four
// off-midpoint thresholds, 1 ulp), so |x - dequant(x)| <= half the largest NF4 gap * absmax.
TEST(QuantCpu, RoundTripErrorIsBoundedByCodeGaps) {
  std::mt19937 rng(11);
  float largest_gap = 0;
  for (int k = 0; k < 15; ++k) largest_gap = std::max(largest_gap, nf4(k + 1) - nf4(k));
  for (int64_t blocksize : {32, 64, 256, 4096}) {
    const int64_t n = 3 * blocksize + 17;
    std::vector<float> x = power_of_two_blocks(n, blocksize, rng);
    Result r = quantize(x, QuantType::nf4, blocksize);
    std::vector<float> d = dequantize(r, n, QuantType::nf4, blocksize);
    for (int64_t i = 0; i < n; ++i) {
      float a = r.absmax[i / blocksize];
      ASSERT_LE(std::fabs(x[i] - d[i]), 0.5f * largest_gap * a * 1.0001f) << i;
    }
  }
}

TEST(QuantCpu, DoubleQuantMatchesStepByStepAndBoundsError) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const int64_t n = 64 * 1000 + 5;
  Tensor weight = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) weight.data_as<float>()[i] = normal(rng);
  QuantizedWeight plain = quantize_4bit(weight, QuantConfig{QuantType::nf4, 64, false});
  QuantizedWeight dq = quantize_4bit(weight, QuantConfig{QuantType::nf4, 64, true});
  // Same 4-bit codes with and without DQ.
  ASSERT_EQ(0, std::memcmp(plain.packed.data(), dq.packed.data(), plain.packed.nbytes()));
  const float* absmax = plain.absmax.data_as<float>();
  const int64_t nb = plain.blocks();
  // The offset is torch's float32 CUDA mean (what bitsandbytes stores), and that is within a few
  // float32 ulps of the exact mean.
  EXPECT_EQ(dq.offset, torch_cuda_mean_f32(absmax, nb));
  double sum = 0;
  for (int64_t i = 0; i < nb; ++i) sum += absmax[i];
  EXPECT_NEAR(dq.offset, sum / nb, 4 * std::numeric_limits<float>::epsilon() * (sum / nb));
  Tensor rebuilt = dequantize_absmax(dq);
  float map[kDynamicMapSize];
  signed_dynamic_map(map);
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t q = dq.absmax.data_as<uint8_t>()[i];
    float nested = dq.nested_absmax.data_as<float>()[i / 256];
    float product = map[q] * nested;
    ASSERT_EQ(rebuilt.data_as<float>()[i], product + dq.offset) << i;
    // 8-bit dynamic codes near |c| ~ nested absmax are spaced <= 1/64 apart (Appendix A), so the
    // rebuilt absmax is within half a step of the true one relative to nested absmax.
    ASSERT_LE(std::fabs(rebuilt.data_as<float>()[i] - absmax[i]), nested * (0.5f / 64.0f) * 1.01f) << i;
  }
}

TEST(QuantCpu, BadArgumentsThrowNamingExpectation) {
  Tensor weight = Tensor::zeros({64}, DType::f32);
  try {
    quantize_4bit(weight, QuantConfig{QuantType::nf4, 48, true});
    FAIL() << "block size 48 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected one of 32, 64"), std::string::npos) << e.what();
  }
  Tensor ints = Tensor::zeros({64}, DType::i32);
  try {
    quantize_4bit(ints, QuantConfig{});
    FAIL() << "I32 weight accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected F32, F16 or BF16"), std::string::npos) << e.what();
  }
  QuantizedWeight w = quantize_4bit(weight, QuantConfig{});
  EXPECT_THROW(dequantize_4bit(w, DType::i32), Error);
  Tensor wrong = Tensor::empty({63}, DType::f32);
  EXPECT_THROW(dequantize_4bit_into(w, wrong), Error);
  w.absmax = Tensor::zeros({2}, DType::u8);
  EXPECT_THROW(dequantize_4bit(w, DType::f32), Error);
  EXPECT_THROW(parse_quant_type("int4"), Error);
  EXPECT_EQ(parse_quant_type("fp4"), QuantType::fp4);
}
