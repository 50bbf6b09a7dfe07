// check_torch_mean FILE: replays every record written by tests/golden/check_torch_mean.py
// (inputs and the float32 that torch.mean returned on the GPU) through torch_cuda_mean_f32 and
// counts exact matches. Not a ctest test: the file is made on a GPU machine.
//
// File (little-endian): "NIBTMEAN", u32 version 1, i32 multiprocessor count, i32 max threads per
// multiprocessor, u32 record count; then per record: i64 n, i32 misalignment (floats),
// f32 x[n], f32 torch result.
//
// Prints the matches of the emulation as configured, and of the other warp-shuffle order as a
// diagnosis; exits 0 only if every record matches.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "nibble/quant/torch_mean.h"

namespace {

template <class T>
bool read_value(std::ifstream& in, T& value) {
  return static_cast<bool>(in.read(reinterpret_cast<char*>(&value), sizeof(T)));
}

uint32_t float_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  char magic[8];
  uint32_t version = 0, count = 0;
  nibble::TorchMeanDevice device;
  if (!in.read(magic, 8) || std::memcmp(magic, "NIBTMEAN", 8) != 0 || !read_value(in, version) || version != 1 ||
      !read_value(in, device.multiprocessor_count) || !read_value(in, device.max_threads_per_multiprocessor) ||
      !read_value(in, count)) {
    std::fprintf(stderr, "%s: not a torch-mean record file (version 1)\n", argv[1]);
    return 2;
  }
  std::printf("device: %d SMs, %d threads per SM; %u records\n", device.multiprocessor_count,
              device.max_threads_per_multiprocessor, count);

  uint32_t matched = 0, matched_other_order = 0, reported = 0;
  std::vector<float> x;
  for (uint32_t r = 0; r < count; ++r) {
    int64_t n = 0;
    int32_t misalignment = 0;
    float expected = 0.0f;
    if (!read_value(in, n) || !read_value(in, misalignment) || n < 0) {
      std::fprintf(stderr, "record %u: truncated header\n", r);
      return 2;
    }
    x.resize(static_cast<size_t>(n));
    if (!in.read(reinterpret_cast<char*>(x.data()), static_cast<std::streamsize>(n * sizeof(float))) ||
        !read_value(in, expected)) {
      std::fprintf(stderr, "record %u: truncated data\n", r);
      return 2;
    }
    nibble::TorchMeanDevice record_device = device;
    record_device.misalignment = misalignment;
    float got = nibble::torch_cuda_mean_f32(x.data(), n, record_device);
    record_device.warp_offsets_decreasing = !device.warp_offsets_decreasing;
    float got_other = nibble::torch_cuda_mean_f32(x.data(), n, record_device);
    bool ok = float_bits(got) == float_bits(expected);
    matched += ok;
    matched_other_order += float_bits(got_other) == float_bits(expected);
    if (!ok && reported < 20) {
      ++reported;
      std::printf("mismatch: n=%lld misalignment=%d torch=%a (0x%08x) emulation=%a (0x%08x)\n",
                  static_cast<long long>(n), misalignment, expected, float_bits(expected), got, float_bits(got));
    }
  }
  std::printf("emulation: %u/%u records match exactly\n", matched, count);
  std::printf("other warp-shuffle order: %u/%u\n", matched_other_order, count);
  return matched == count ? 0 : 1;
}
