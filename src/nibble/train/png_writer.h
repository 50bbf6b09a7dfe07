// A minimal PNG encoder, so `nibble train` can draw its loss curve without an image library:
// 8-bit RGB, no interlace, filter 0 on every row, one IDAT chunk. Written from the PNG
// specification (ISO/IEC 15948, W3C PNG 2nd edition: chunk layout, CRC-32 of type + data),
// zlib (RFC 1950: CMF/FLG header, Adler-32 trailer) and DEFLATE (RFC 1951: stored blocks, and
// one block of the fixed Huffman code fed by a hash-chain LZ77 matcher). Plots are mostly flat
// colour, which fixed codes with long matches shrink about 50-100x; data that would not shrink
// goes out as stored blocks instead, never larger than the input plus a few bytes per 64 KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nibble {

// CRC-32 (ISO 3309 / ITU-T V.42, reflected polynomial 0xEDB88320), as PNG chunks and gzip use;
// `crc` continues a previous value (0 to start).
uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t size);
// Adler-32 (RFC 1950 section 8.2) of `data`, continuing `adler` (1 to start).
uint32_t adler32_update(uint32_t adler, const uint8_t* data, size_t size);

// A complete zlib stream of `data`: fixed-Huffman DEFLATE, or stored blocks when that is smaller
// (or when `stored_only`, which tests use to check the stored path).
std::vector<uint8_t> zlib_compress(const uint8_t* data, size_t size, bool stored_only = false);

// A PNG file of a width x height RGB image (`rgb`: height rows of width * 3 bytes, top row first).
std::vector<uint8_t> encode_png_rgb(const uint8_t* rgb, int width, int height);

}  // namespace nibble
