// The PNG encoder checked against zlib, an independent implementation of the same RFCs.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <random>
#include <string>

#include "nibble/core/error.h"
#include "nibble/train/png_writer.h"
#include "png_test_util.h"

namespace nibble {
namespace {

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

TEST(PngWriter, ChecksumsMatchTheirStandardCheckValues) {
  const std::string check = "123456789";
  // CRC-32/ISO-HDLC check value, and zlib's own implementation of both sums.
  EXPECT_EQ(crc32_update(0, reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);
  std::mt19937 gen(1);
  std::vector<uint8_t> data(100000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(gen());
  EXPECT_EQ(crc32_update(0, data.data(), data.size()), ::crc32(0, data.data(), static_cast<uInt>(data.size())));
  EXPECT_EQ(adler32_update(1, data.data(), data.size()), ::adler32(1, data.data(), static_cast<uInt>(data.size())));
  // Continuing a sum over a split buffer gives the sum of the whole.
  EXPECT_EQ(crc32_update(crc32_update(0, data.data(), 777), data.data() + 777, data.size() - 777),
            crc32_update(0, data.data(), data.size()));
  const std::string wiki = "Wikipedia";
  EXPECT_EQ(adler32_update(1, reinterpret_cast<const uint8_t*>(wiki.data()), wiki.size()), 0x11E60398u);
}

TEST(PngWriter, ZlibStreamsInflateBackToTheInput) {
  std::mt19937 gen(7);
  std::vector<std::vector<uint8_t>> inputs = {{}, bytes_of("a"), bytes_of("hello hello hello hello, world")};
  std::vector<uint8_t> repetitive(300000);
  for (size_t i = 0; i < repetitive.size(); ++i) repetitive[i] = static_cast<uint8_t>((i / 1000) % 7 * 30 + (i % 3));
  inputs.push_back(repetitive);
  std::vector<uint8_t> random(150000);
  for (uint8_t& b : random) b = static_cast<uint8_t>(gen());
  inputs.push_back(random);
  std::vector<uint8_t> mixed(70000);  // random stretches and repeats of them, far and near
  for (size_t i = 0; i < mixed.size(); ++i)
    mixed[i] = i > 40000 && gen() % 4 != 0 ? mixed[i - 1 - gen() % 32000] : static_cast<uint8_t>(gen() % 16);
  inputs.push_back(mixed);
  for (const std::vector<uint8_t>& input : inputs) {
    for (bool stored_only : {false, true}) {
      const std::vector<uint8_t> stream = zlib_compress(input.data(), input.size(), stored_only);
      EXPECT_EQ(test::inflate_zlib(stream, input.size()), input) << input.size() << " bytes, stored " << stored_only;
      // Never much larger than the input: stored blocks cost 5 bytes per 64 KiB.
      EXPECT_LE(stream.size(), input.size() + 6 + 5 * (input.size() / 65535 + 1));
    }
  }
  // A flat plot background shrinks by far more than 50x with long matches.
  std::vector<uint8_t> white(3 * 1000 * 600, 255);
  EXPECT_LT(zlib_compress(white.data(), white.size()).size(), white.size() / 50);
  EXPECT_LT(zlib_compress(repetitive.data(), repetitive.size()).size(), repetitive.size() / 20);
}

TEST(PngWriter, ChunksHeaderAndPixelsAreWhatWasGiven) {
  const int width = 37, height = 23;
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>((i * 31) ^ (i >> 5));
  const std::vector<uint8_t> png = encode_png_rgb(rgb.data(), width, height);
  const test::DecodedPng decoded = test::decode_png(png);
  EXPECT_EQ(decoded.chunk_types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  EXPECT_EQ(decoded.width, width);
  EXPECT_EQ(decoded.height, height);
  EXPECT_EQ(decoded.rgb, rgb);
  EXPECT_THROW(encode_png_rgb(rgb.data(), 0, 5), Error);
}

}  // namespace
}  // namespace nibble
