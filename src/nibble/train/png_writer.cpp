#include "nibble/train/png_writer.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "nibble/core/error.h"

namespace nibble {

namespace {

// Bits go out least significant first (RFC 1951 3.1.1); Huffman codes are reversed first,
// because they are defined most significant bit first.
class BitWriter {
 public:
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out) {}
  void put(uint32_t value, int bits) {
    buffer_ |= static_cast<uint64_t>(value) << count_;
    count_ += bits;
    while (count_ >= 8) {
      out_.push_back(static_cast<uint8_t>(buffer_));
      buffer_ >>= 8;
      count_ -= 8;
    }
  }
  void put_huffman(uint32_t code, int bits) {
    uint32_t reversed = 0;
    for (int i = 0; i < bits; ++i) reversed |= ((code >> i) & 1u) << (bits - 1 - i);
    put(reversed, bits);
  }
  void align() {
    if (count_ > 0) put(0, 8 - count_);
  }

 private:
  std::vector<uint8_t>& out_;
  uint64_t buffer_ = 0;
  int count_ = 0;
};

// RFC 1951 3.2.6: the fixed literal/length code.
void put_literal_length(BitWriter& bits, int symbol) {
  if (symbol <= 143) bits.put_huffman(0x30 + symbol, 8);
  else if (symbol <= 255) bits.put_huffman(0x190 + (symbol - 144), 9);
  else if (symbol <= 279) bits.put_huffman(symbol - 256, 7);
  else bits.put_huffman(0xC0 + (symbol - 280), 8);
}

// RFC 1951 3.2.5: length codes 257..285 and distance codes 0..29 with their extra bits.
struct LengthDistanceTables {
  std::array<uint16_t, 29> length_base{};
  std::array<uint8_t, 29> length_extra{};
  std::array<uint16_t, 30> distance_base{};
  std::array<uint8_t, 30> distance_extra{};
  LengthDistanceTables() {
    int base = 3;
    for (int c = 0; c < 28; ++c) {
      length_extra[c] = static_cast<uint8_t>(c < 8 ? 0 : (c - 4) / 4);
      length_base[c] = static_cast<uint16_t>(base);
      base += 1 << length_extra[c];
    }
    length_base[28] = 258;  // code 285: 258 with no extra bits
    length_extra[28] = 0;
    base = 1;
    for (int c = 0; c < 30; ++c) {
      distance_extra[c] = static_cast<uint8_t>(c < 4 ? 0 : (c - 2) / 2);
      distance_base[c] = static_cast<uint16_t>(base);
      base += 1 << distance_extra[c];
    }
  }
};

const LengthDistanceTables& tables() {
  static const LengthDistanceTables t;
  return t;
}

void put_match(BitWriter& bits, int length, int distance) {
  const LengthDistanceTables& t = tables();
  int lc = 28;
  while (t.length_base[lc] > length) --lc;
  put_literal_length(bits, 257 + lc);
  bits.put(static_cast<uint32_t>(length - t.length_base[lc]), t.length_extra[lc]);
  int dc = 29;
  while (t.distance_base[dc] > distance) --dc;
  bits.put_huffman(static_cast<uint32_t>(dc), 5);
  bits.put(static_cast<uint32_t>(distance - t.distance_base[dc]), t.distance_extra[dc]);
}

constexpr int kWindow = 32768;
constexpr int kHashBits = 15;
constexpr int kMaxChain = 64;
constexpr int kMinMatch = 3;
constexpr int kMaxMatch = 258;

uint32_t hash3(const uint8_t* p) {
  const uint32_t v = p[0] | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16);
  return (v * 2654435761u) >> (32 - kHashBits);
}

// One final block of fixed Huffman codes; LZ77 by hash chains over the last 32 KiB, greedy.
void deflate_fixed(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
  BitWriter bits(out);
  bits.put(1, 1);  // BFINAL
  bits.put(1, 2);  // BTYPE 01: fixed Huffman codes
  std::vector<int64_t> head(size_t{1} << kHashBits, -1);
  std::vector<int64_t> previous(kWindow, -1);
  const int64_t n = static_cast<int64_t>(size);
  auto insert = [&](int64_t p) {
    if (p + kMinMatch > n) return;
    const uint32_t h = hash3(data + p);
    previous[static_cast<size_t>(p & (kWindow - 1))] = head[h];
    head[h] = p;
  };
  int64_t i = 0;
  while (i < n) {
    int best_length = 0;
    int64_t best_distance = 0;
    if (i + kMinMatch <= n) {
      const int64_t limit = std::min<int64_t>(kMaxMatch, n - i);
      int64_t candidate = head[hash3(data + i)];
      for (int chain = 0; chain < kMaxChain && candidate >= 0 && i - candidate <= kWindow; ++chain) {
        int length = 0;
        while (length < limit && data[candidate + length] == data[i + length]) ++length;
        if (length > best_length) {
          best_length = length;
          best_distance = i - candidate;
          if (length == limit) break;
        }
        candidate = previous[static_cast<size_t>(candidate & (kWindow - 1))];
      }
    }
    if (best_length >= kMinMatch) {
      put_match(bits, best_length, static_cast<int>(best_distance));
      for (int k = 0; k < best_length; ++k) insert(i + k);
      i += best_length;
    } else {
      put_literal_length(bits, data[i]);
      insert(i);
      ++i;
    }
  }
  put_literal_length(bits, 256);  // end of block
  bits.align();
}

void deflate_stored(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
  size_t done = 0;
  do {
    const size_t chunk = std::min<size_t>(size - done, 65535);
    const bool last = done + chunk == size;
    out.push_back(last ? 1 : 0);  // BFINAL, BTYPE 00, then padding to the byte boundary
    const uint16_t len = static_cast<uint16_t>(chunk);
    const uint16_t nlen = static_cast<uint16_t>(~len);
    for (uint16_t v : {len, nlen}) {
      out.push_back(static_cast<uint8_t>(v));
      out.push_back(static_cast<uint8_t>(v >> 8));
    }
    out.insert(out.end(), data + done, data + done + chunk);
    done += chunk;
  } while (done < size);
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void put_chunk(std::vector<uint8_t>& png, const char type[4], const std::vector<uint8_t>& data) {
  put_be32(png, static_cast<uint32_t>(data.size()));
  const size_t type_at = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_be32(png, crc32_update(0, png.data() + type_at, 4 + data.size()));
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32_update(uint32_t adler, const uint8_t* data, size_t size) {
  constexpr uint32_t kMod = 65521;
  uint32_t a = adler & 0xFFFFu, b = adler >> 16;
  while (size > 0) {
    // 5552 bytes is the most that cannot overflow b before the modulo (RFC 1950's NMAX).
    const size_t n = std::min<size_t>(size, 5552);
    for (size_t i = 0; i < n; ++i) {
      a += data[i];
      b += a;
    }
    a %= kMod;
    b %= kMod;
    data += n;
    size -= n;
  }
  return (b << 16) | a;
}

std::vector<uint8_t> zlib_compress(const uint8_t* data, size_t size, bool stored_only) {
  // CMF 0x78: deflate with a 32 KiB window; FLG 0x9C makes CMF * 256 + FLG a multiple of 31.
  std::vector<uint8_t> out = {0x78, 0x9C};
  if (!stored_only) deflate_fixed(data, size, out);
  const size_t stored_size = 2 + size + 5 * (size / 65535 + 1);
  if (stored_only || out.size() > stored_size) {
    out.resize(2);
    deflate_stored(data, size, out);
  }
  put_be32(out, adler32_update(1, data, size));
  return out;
}

std::vector<uint8_t> encode_png_rgb(const uint8_t* rgb, int width, int height) {
  NIBBLE_CHECK(width > 0 && height > 0 && width <= (1 << 24) && height <= (1 << 24),
               "PNG size {}x{}: expected 1..2^24 pixels each way", width, height);
  const size_t row = static_cast<size_t>(width) * 3;
  std::vector<uint8_t> raw;
  raw.reserve((row + 1) * static_cast<size_t>(height));
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter type 0 (None)
    raw.insert(raw.end(), rgb + row * static_cast<size_t>(y), rgb + row * static_cast<size_t>(y + 1));
  }
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> header;
  put_be32(header, static_cast<uint32_t>(width));
  put_be32(header, static_cast<uint32_t>(height));
  header.insert(header.end(), {8, 2, 0, 0, 0});  // 8 bits, truecolour, deflate, filter 0, no interlace
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", zlib_compress(raw.data(), raw.size()));
  put_chunk(png, "IEND", {});
  return png;
}

}  // namespace nibble
