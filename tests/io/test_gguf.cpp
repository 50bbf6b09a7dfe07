// The GGUF reader: metadata of every type, tensor infos and bytes, and every malformed file we
// can think of, each a nibble::Error that names the problem (never a crash).
#include <gtest/gtest.h>

#include <cstring>

#include "io_test_util.h"
#include "nibble/io/gguf.h"
#include "tests/support/gguf_writer.h"

namespace nibble {
namespace {

using test::expect_error;
using test::ScratchDir;
using test::write_bytes;
using testing::GgufWriter;
using testing::le_u32;
using testing::le_u64;

std::string f32_bytes(const std::vector<float>& v) {
  std::string out(v.size() * 4, '\0');
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// A small valid file: two F32 tensors and a few keys.
GgufWriter small_file(uint32_t alignment = 32) {
  GgufWriter w;
  w.alignment = alignment;
  if (alignment != 32) w.add_u32("general.alignment", alignment);
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 2);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_strings("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.add_tensor("x.weight", {4, 2}, testing::kGgmlF32, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  w.add_tensor("y.weight", {3}, testing::kGgmlF32, f32_bytes({-1, -2, -3}));
  return w;
}

GgufFile open_bytes(const ScratchDir& dir, const std::string& bytes) {
  write_bytes(dir / "m.gguf", bytes);
  return GgufFile::open(dir / "m.gguf");
}

TEST(Gguf, ReadsHeaderMetadataTensorInfosAndBytes) {
  ScratchDir dir;
  GgufFile f = open_bytes(dir, small_file().bytes());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"general.architecture", "llama.block_count", "llama.rope.freq_base",
                                                "tokenizer.ggml.tokens"}));
  EXPECT_EQ(f.string("general.architecture"), "llama");
  EXPECT_EQ(f.integer("llama.block_count"), 2);
  EXPECT_EQ(f.number("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f.number("llama.block_count"), 2.0);
  EXPECT_EQ(f.string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(f.type_of("tokenizer.ggml.tokens"), "array of string");
  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo& x = f.tensor("x.weight");
  EXPECT_EQ(x.ne, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(x.shape(), (Shape{2, 4}));
  EXPECT_EQ(x.nbytes, 32u);
  EXPECT_EQ(x.offset, 0u);
  EXPECT_EQ(f.tensor("y.weight").offset, 32u);  // 32 bytes of x, already aligned
  Tensor t = f.dequantize(x);
  EXPECT_EQ(t.shape(), (Shape{2, 4}));
  EXPECT_EQ(t.data_as<float>()[5], 6.0f);
  EXPECT_EQ(f.dequantize(f.tensor("y.weight")).data_as<float>()[2], -3.0f);
  EXPECT_EQ(f.find_tensor("z"), nullptr);
  expect_error([&] { f.tensor("z"); }, {"m.gguf", "tensor 'z' not found"});
}

TEST(Gguf, AlignmentKeyMovesTheDataSection) {
  ScratchDir dir;
  GgufFile f = open_bytes(dir, small_file(64).bytes());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("y.weight").offset, 64u);
  EXPECT_EQ(f.dequantize(f.tensor("y.weight")).data_as<float>()[0], -1.0f);
}

TEST(Gguf, VersionTwoIsRead) {
  ScratchDir dir;
  GgufWriter w = small_file();
  w.version = 2;
  EXPECT_EQ(open_bytes(dir, w.bytes()).version(), 2u);
}

TEST(Gguf, TypedReadsNameTheKeyAndTheType) {
  ScratchDir dir;
  GgufFile f = open_bytes(dir, small_file().bytes());
  expect_error([&] { f.string("llama.block_count"); }, {"m.gguf", "'llama.block_count' is u32", "expected a string"});
  expect_error([&] { f.integer("general.architecture"); }, {"'general.architecture' is string", "an integer"});
  expect_error([&] { f.integer("missing.key"); }, {"'missing.key' is missing"});
  expect_error([&] { f.string_array("llama.block_count"); }, {"is u32", "an array of strings"});
  expect_error([&] { f.integer_array("tokenizer.ggml.tokens"); }, {"array of string", "an array of integers"});
  expect_error([&] { f.boolean("llama.block_count"); }, {"expected a bool"});
}

TEST(Gguf, EveryTruncationIsAnError) {
  ScratchDir dir;
  const std::string bytes = small_file().bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(dir / "t.gguf", bytes.substr(0, n));
    EXPECT_THROW(GgufFile::open(dir / "t.gguf"), Error) << "truncated to " << n << " of " << bytes.size() << " bytes";
  }
  write_bytes(dir / "t.gguf", bytes.substr(0, 40));
  expect_error([&] { GgufFile::open(dir / "t.gguf"); }, {"t.gguf", "claims 4 metadata entries", "16 bytes left"});
  // Header 24 bytes, general.architecture 45 bytes, then the key llama.block_count (8 + 17 bytes)
  // and its type: cut in the type.
  write_bytes(dir / "t.gguf", bytes.substr(0, 96));
  expect_error([&] { GgufFile::open(dir / "t.gguf"); },
               {"t.gguf", "file truncated: metadata 'llama.block_count' type at byte 94 needs 4 bytes"});
  write_bytes(dir / "t.gguf", bytes.substr(0, bytes.size() - 1));
  expect_error([&] { GgufFile::open(dir / "t.gguf"); }, {"tensor 'y.weight'", "reaches past the end", "truncated"});
}

TEST(Gguf, BadMagicAndVersions) {
  ScratchDir dir;
  std::string bytes = small_file().bytes();
  std::string bad = bytes;
  bad[3] = 'X';
  expect_error([&] { open_bytes(dir, bad); }, {"m.gguf", "not a GGUF file", "47 47 55 58", "expected \"GGUF\""});
  for (uint32_t version : {0u, 1u, 4u, 0x03000000u}) {
    bad = bytes;
    std::memcpy(bad.data() + 4, le_u32(version).data(), 4);
    expect_error([&] { open_bytes(dir, bad); }, {"m.gguf", fmt::format("GGUF version {}", version), "expected 2 or 3"});
  }
  bad = bytes;
  std::memcpy(bad.data() + 4, le_u32(0x03000000u).data(), 4);
  expect_error([&] { open_bytes(dir, bad); }, {"big-endian"});
  expect_error([&] { open_bytes(dir, "GG"); }, {"file is 2 bytes"});
}

TEST(Gguf, AbsurdCountsAreRefusedBeforeAnyAllocation) {
  ScratchDir dir;
  GgufWriter w = small_file();
  w.tensor_count_override = uint64_t{1} << 60;
  expect_error([&] { open_bytes(dir, w.bytes()); }, {"m.gguf", "claims 1152921504606846976 tensors"});
  w = small_file();
  w.kv_count_override = uint64_t{1} << 60;
  expect_error([&] { open_bytes(dir, w.bytes()); }, {"claims 1152921504606846976 metadata entries"});
  w = small_file();
  w.kv_count_override = ~uint64_t{0};
  EXPECT_THROW(open_bytes(dir, w.bytes()), Error);
  // An array claiming 2^60 strings, and a string claiming 2^63 bytes.
  w = small_file();
  w.add_raw("huge.array", testing::kGgufArray, le_u32(testing::kGgufString) + le_u64(uint64_t{1} << 60));
  expect_error([&] { open_bytes(dir, w.bytes()); }, {"metadata 'huge.array' claims 1152921504606846976 elements"});
  w = small_file();
  w.add_raw("huge.string", testing::kGgufString, le_u64(uint64_t{1} << 63) + "abc");
  expect_error([&] { open_bytes(dir, w.bytes()); }, {"metadata 'huge.string'", "needs 9223372036854775808 bytes"});
}

TEST(Gguf, BadTensorInfos) {
  ScratchDir dir;
  auto with_tensor = [&](const std::vector<uint64_t>& ne, uint32_t type, const std::string& data,
                         std::optional<uint64_t> offset = std::nullopt) {
    GgufWriter w = small_file();
    w.add_tensor("bad.weight", ne, type, data, offset);
    return w.bytes();
  };
  expect_error([&] { open_bytes(dir, with_tensor({1, 1, 1, 1, 1}, testing::kGgmlF32, f32_bytes({1}))); },
               {"tensor 'bad.weight' has 5 dimensions", "at most 4"});
  expect_error([&] { open_bytes(dir, with_tensor({4}, 99, f32_bytes({1, 2, 3, 4}))); },
               {"tensor 'bad.weight' has type type 99", "cannot dequantize", "Q4_K"});
  expect_error([&] { open_bytes(dir, with_tensor({256}, 16, std::string(66, '\0'))); }, {"IQ2_XXS (16)"});
  expect_error([&] { open_bytes(dir, with_tensor({48}, testing::kGgmlQ8_0, std::string(68, '\0'))); },
               {"Q8_0 with rows of 48 values", "multiple of its block of 32"});
  expect_error([&] { open_bytes(dir, with_tensor({uint64_t{1} << 40, uint64_t{1} << 40}, testing::kGgmlF32, "")); },
               {"tensor 'bad.weight' dimension 1", "no longer fits"});
  expect_error([&] { open_bytes(dir, with_tensor({~uint64_t{0}}, testing::kGgmlF32, "")); }, {"no longer fits"});
  expect_error([&] { open_bytes(dir, with_tensor({4}, testing::kGgmlF32, f32_bytes({1, 2, 3, 4}), 1 << 30)); },
               {"tensor 'bad.weight' (16 bytes at data offset 1073741824) reaches past the end of the file"});
  expect_error([&] { open_bytes(dir, with_tensor({4}, testing::kGgmlF32, f32_bytes({1, 2, 3, 4}), 16)); },
               {"tensor 'bad.weight' is at offset 16, not a multiple of the alignment 32"});
  expect_error([&] { open_bytes(dir, with_tensor({4}, testing::kGgmlF32, f32_bytes({1, 2, 3, 4}), ~uint64_t{31})); },
               {"reaches past the end"});
  // x.weight occupies [0, 32): a tensor at offset 0 overlaps it.
  expect_error([&] { open_bytes(dir, with_tensor({4}, testing::kGgmlF32, f32_bytes({1, 2, 3, 4}), 0)); },
               {"overlaps tensor", "x.weight", "bad.weight"});
  GgufWriter w = small_file();
  w.add_tensor("x.weight", {1}, testing::kGgmlF32, f32_bytes({1}));
  expect_error([&] { open_bytes(dir, w.bytes()); }, {"tensor 'x.weight' appears twice"});
  w = small_file();
  w.add_tensor("", {1}, testing::kGgmlF32, f32_bytes({1}));
  expect_error([&] { open_bytes(dir, w.bytes()); }, {"empty name"});
}

TEST(Gguf, BadMetadata) {
  ScratchDir dir;
  auto with_kv = [&](const std::string& key, uint32_t type, const std::string& payload) {
    GgufWriter w = small_file();
    w.add_raw(key, type, payload);
    return w.bytes();
  };
  expect_error([&] { open_bytes(dir, with_kv("k", 13, le_u32(1))); },
               {"metadata 'k' has value type 13", "expected 0..12"});
  expect_error([&] { open_bytes(dir, with_kv("k", testing::kGgufBool, std::string(1, 2))); },
               {"metadata 'k' is a bool holding 2", "expected 0 or 1"});
  expect_error([&] { open_bytes(dir, with_kv("k", testing::kGgufArray, le_u32(testing::kGgufArray) + le_u64(0))); },
               {"metadata 'k' is an array of arrays"});
  expect_error([&] { open_bytes(dir, with_kv("llama.block_count", testing::kGgufU32, le_u32(3))); },
               {"metadata key 'llama.block_count' appears twice"});
  expect_error([&] { open_bytes(dir, with_kv("", testing::kGgufU32, le_u32(3))); }, {"is empty"});
  for (uint32_t alignment : {0u, 3u, 48u}) {
    expect_error([&] { open_bytes(dir, with_kv("general.alignment", testing::kGgufU32, le_u32(alignment))); },
                 {"general.alignment is " + std::to_string(alignment), "power of two"});
  }
  expect_error([&] { open_bytes(dir, with_kv("general.alignment", testing::kGgufU64, le_u64(32))); },
               {"general.alignment is u64; expected a u32"});
}

TEST(Gguf, EmptyTensorsMayShareAnOffset) {
  ScratchDir dir;
  GgufWriter w = small_file();
  w.add_tensor("empty", {0, 4}, testing::kGgmlQ8_0, "", 0);
  GgufFile f = open_bytes(dir, w.bytes());
  EXPECT_EQ(f.tensor("empty").nbytes, 0u);
  EXPECT_EQ(f.dequantize(f.tensor("empty")).numel(), 0);
}

TEST(Gguf, EmptyFileOfNoTensorsIsValid) {
  ScratchDir dir;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  GgufFile f = open_bytes(dir, w.bytes());
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.keys().size(), 1u);
}

TEST(Gguf, MissingFileNamesIt) {
  expect_error([] { GgufFile::open("/nonexistent/model.gguf"); }, {"/nonexistent/model.gguf", "cannot open"});
}

}  // namespace
}  // namespace nibble
