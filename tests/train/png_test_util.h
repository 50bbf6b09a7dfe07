// Reading our PNGs back with zlib (independent of the encoder under test): chunk CRCs checked,
// IHDR parsed, IDAT inflated and unfiltered (filter type 0, the only one the encoder writes).
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace nibble::test {

inline std::vector<uint8_t> inflate_zlib(const std::vector<uint8_t>& stream, size_t expected_size) {
  std::vector<uint8_t> out(expected_size + 16);
  uLongf size = static_cast<uLongf>(out.size());
  const int rc = ::uncompress(out.data(), &size, stream.data(), static_cast<uLong>(stream.size()));
  EXPECT_EQ(rc, Z_OK) << "zlib uncompress failed";
  out.resize(rc == Z_OK ? size : 0);
  return out;
}

struct DecodedPng {
  int width = 0, height = 0;
  std::vector<std::string> chunk_types;
  std::vector<uint8_t> rgb;  // rows top first, 3 bytes a pixel
};

inline uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

inline DecodedPng decode_png(const std::vector<uint8_t>& png) {
  DecodedPng d;
  const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (png.size() < 8 || std::memcmp(png.data(), signature, 8) != 0) {
    ADD_FAILURE() << "no PNG signature";
    return d;
  }
  std::vector<uint8_t> idat;
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t length = be32(&png[at]);
    if (at + 12 + length > png.size()) {
      ADD_FAILURE() << "chunk runs past the end";
      return d;
    }
    const std::string type(reinterpret_cast<const char*>(&png[at + 4]), 4);
    const uint8_t* data = &png[at + 8];
    EXPECT_EQ(be32(data + length), ::crc32(0, &png[at + 4], 4 + length)) << type << " CRC";
    d.chunk_types.push_back(type);
    if (type == "IHDR") {
      EXPECT_EQ(length, 13u);
      d.width = static_cast<int>(be32(data));
      d.height = static_cast<int>(be32(data + 4));
      EXPECT_EQ(data[8], 8) << "bit depth";
      EXPECT_EQ(data[9], 2) << "colour type (truecolour)";
      EXPECT_EQ(data[10] | data[11] | data[12], 0) << "compression, filter, interlace";
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + length);
    }
    at += 12 + length;
  }
  EXPECT_EQ(at, png.size()) << "bytes after the last chunk";
  const size_t row = static_cast<size_t>(d.width) * 3;
  const std::vector<uint8_t> raw = inflate_zlib(idat, (row + 1) * static_cast<size_t>(d.height));
  if (raw.size() != (row + 1) * static_cast<size_t>(d.height)) {
    ADD_FAILURE() << "IDAT holds " << raw.size() << " bytes";
    return d;
  }
  for (int y = 0; y < d.height; ++y) {
    const uint8_t* line = &raw[static_cast<size_t>(y) * (row + 1)];
    EXPECT_EQ(line[0], 0) << "filter type of row " << y;
    d.rgb.insert(d.rgb.end(), line + 1, line + 1 + row);
  }
  return d;
}

}  // namespace nibble::test
