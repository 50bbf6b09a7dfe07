#include <csignal>

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>

#include "io_test_util.h"
#include "nibble/core/half.h"
#include "nibble/io/safetensors.h"

namespace nibble {
namespace {

using test::expect_error;
using test::safetensors_bytes;
using test::ScratchDir;
using test::write_bytes;

template <typename T>
Tensor filled(const Shape& shape, DType dtype, T first) {
  Tensor t = Tensor::empty(shape, dtype);
  T* p = t.data_as<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(first + static_cast<T>(i));
  return t;
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.data()), t.nbytes()); }

TEST(Safetensors, RoundTripKeepsBytesShapesAndMetadataAndAlignsEveryTensor) {
  ScratchDir dir;
  Tensor bf = Tensor::empty({4}, DType::bf16);
  for (int i = 0; i < 4; ++i) bf.data_as<bf16_t>()[i] = float_to_bf16(0.5f * static_cast<float>(i) - 1.0f);
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"u8", filled<uint8_t>({3}, DType::u8, 7)},
      {"w", filled<float>({2, 3}, DType::f32, 1.5f)},
      {"b", bf},
      {"idx", filled<int64_t>({2}, DType::i64, -3)},
      {"scalar", filled<float>({}, DType::f32, 42.0f)},
      {"empty", Tensor::empty({0, 5}, DType::f32)},
  };
  save_safetensors(dir / "t.safetensors", tensors, {{"format", "pt"}, {"note", "x"}});

  SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  // Descending element size, then name: i64, then the f32 ones by name, then bf16, then u8.
  EXPECT_EQ(file.names(), (std::vector<std::string>{"idx", "empty", "scalar", "w", "b", "u8"}));
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  for (const auto& [name, original] : tensors) {
    ASSERT_TRUE(file.contains(name));
    Tensor read = file.tensor(name);
    EXPECT_EQ(read.dtype(), original.dtype()) << name;
    EXPECT_EQ(read.shape(), original.shape()) << name;
    EXPECT_EQ(bytes_of(read), bytes_of(original)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(read.data()) % dtype_size(read.dtype()), 0u) << name;
  }
  EXPECT_FALSE(file.contains("missing"));

  std::string raw = test::read_bytes(dir / "t.safetensors");
  uint64_t header_length = 0;
  std::memcpy(&header_length, raw.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
}

TEST(Safetensors, HeaderTextIsTheReferenceWritersCompactJsonPaddedWithSpaces) {
  ScratchDir dir;
  save_safetensors(dir / "a.safetensors", {{"a", filled<float>({2}, DType::f32, 1.0f)}});
  std::string raw = test::read_bytes(dir / "a.safetensors");
  std::string expected_header = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expected_header.append((8 - expected_header.size() % 8) % 8, ' ');
  uint64_t length = 0;
  std::memcpy(&length, raw.data(), 8);
  ASSERT_EQ(length, expected_header.size());
  EXPECT_EQ(raw.substr(8, length), expected_header);
  EXPECT_EQ(raw.size(), 8 + length + 8);
}

TEST(Safetensors, TensorOutlivesTheFileObjectAndCopiesShareTheMapping) {
  ScratchDir dir;
  save_safetensors(dir / "a.safetensors", {{"a", filled<float>({3}, DType::f32, 2.0f)}});
  Tensor kept;
  {
    SafetensorsFile file = SafetensorsFile::open(dir / "a.safetensors");
    SafetensorsFile copy = file;
    kept = copy.tensor("a");
    EXPECT_EQ(copy.path(), file.path());
  }
  EXPECT_EQ(kept.data_as<float>()[2], 4.0f);
}

TEST(Safetensors, MisalignedTensorFromAnotherWriterIsCopiedToAlignedMemory) {
  ScratchDir dir;
  // Header of 9 bytes puts the buffer at file offset 17; "b" (F32) starts at buffer offset 1.
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  while ((8 + header.size() + 1) % 4 == 0) header += ' ';
  float values[2] = {3.25f, -1.5f};
  std::string data(1, '\x05');
  data.append(reinterpret_cast<const char*>(values), 8);
  write_bytes(dir / "u.safetensors", safetensors_bytes(header, data));
  SafetensorsFile file = SafetensorsFile::open(dir / "u.safetensors");
  Tensor b = file.tensor("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 4, 0u);
  EXPECT_EQ(b.data_as<float>()[0], 3.25f);
  EXPECT_EQ(b.data_as<float>()[1], -1.5f);
  EXPECT_EQ(file.tensor("a").data_as<uint8_t>()[0], 5);
}

// Each bad file is built byte by byte; the error must name the file, the tensor (where there is
// one) and what was expected.
class BadSafetensors : public ::testing::Test {
 protected:
  std::string write(const std::string& header, const std::string& data, int64_t stated_length = -1) {
    std::string path = dir_ / "bad.safetensors";
    write_bytes(path, safetensors_bytes(header, data, stated_length));
    return path;
  }
  ScratchDir dir_;
};

TEST_F(BadSafetensors, HeaderLengthPastTheEnd) {
  std::string path = write(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x", 1000);
  expect_error([&] { SafetensorsFile::open(path); }, {path, "header length 1000", "past the end", "expected at most"});
}

TEST_F(BadSafetensors, HeaderLengthOverTheLimit) {
  std::string path = write("{}", "", int64_t{200'000'000});
  expect_error([&] { SafetensorsFile::open(path); }, {path, "exceeds the limit"});
}

TEST_F(BadSafetensors, FileShorterThanTheLengthField) {
  std::string path = dir_ / "short.safetensors";
  write_bytes(path, "abc");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "expected at least"});
}

TEST_F(BadSafetensors, BadJson) {
  std::string path = write(R"({"a":{"dtype":"U8","shape":[1],)", "x");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "not valid UTF-8 JSON", "expected a JSON object"});
}

TEST_F(BadSafetensors, InvalidUtf8) {
  std::string path = write("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "x");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "not valid UTF-8 JSON"});
}

TEST_F(BadSafetensors, OffsetsOutOfRange) {
  std::string path = write(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", std::string(8, '\0'));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "[8, 16]", "reach past the end", "expected end <= 8"});
}

TEST_F(BadSafetensors, Overlapping) {
  std::string path = write(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, '\0'));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'b'", "overlap tensor 'a'", "expected it to start at 8"});
}

TEST_F(BadSafetensors, Gap) {
  std::string path = write(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", std::string(4, '\0'));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "gap of 2 bytes"});
}

TEST_F(BadSafetensors, UnknownDtype) {
  std::string path = write(R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "unknown dtype \"F17\"", "expected one of", "BF16"});
}

TEST_F(BadSafetensors, BytesNotMatchingShape) {
  std::string path = write(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "span 8 bytes", "expected 12 bytes for F32[3]"});
}

TEST_F(BadSafetensors, ShapeWhoseSizeOverflows) {
  std::string path = write(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "64 bits"});
}

TEST_F(BadSafetensors, TruncatedFile) {
  std::string good = dir_ / "good.safetensors";
  save_safetensors(good, {{"w", filled<float>({16}, DType::f32, 0.0f)}});
  std::string bytes = test::read_bytes(good);
  std::string path = dir_ / "truncated.safetensors";
  write_bytes(path, bytes.substr(0, bytes.size() - 10));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "reach past the end", "truncated"});
}

TEST_F(BadSafetensors, TrailingBytesAfterTheLastTensor) {
  std::string path = write(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "xyz");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "2 bytes after the last tensor 'a'"});
}

TEST_F(BadSafetensors, DuplicateNames) {
  std::string path = write(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                           "xy");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "twice", "unique tensor names"});
}

TEST_F(BadSafetensors, MissingFieldAndWrongTypes) {
  std::string path = write(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "no \"shape\""});
  path = write(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "x");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'a'", "non-negative integers"});
  path = write(R"({"__metadata__":{"format":1}})", "");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "__metadata__", "'format'", "expected a string"});
  path = write(R"([1,2])", "");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "expected a JSON object"});
}

TEST_F(BadSafetensors, AbsentTensorAndUnsupportedDtypeNameTheFileAndTensor) {
  std::string path = write(R"({"f8":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "xy");
  SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.dtype_name("f8"), "F8_E4M3");
  expect_error([&] { file.tensor("f8"); }, {path, "tensor 'f8'", "F8_E4M3"});
  expect_error([&] { file.tensor("nope"); }, {path, "tensor 'nope' not found"});
}

TEST(SafetensorsWriter, UnwritableFolderThrowsAndLeavesNothing) {
  ScratchDir dir;
  std::string path = dir / "missing_folder/out.safetensors";
  expect_error([&] { save_safetensors(path, {{"a", filled<float>({2}, DType::f32, 0.0f)}}); }, {path});
  write_bytes(dir / "plain_file", "x");
  std::string under_file = dir / "plain_file/out.safetensors";
  expect_error([&] { save_safetensors(under_file, {{"a", filled<float>({2}, DType::f32, 0.0f)}}); }, {under_file});
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"plain_file"});
}

TEST(SafetensorsWriter, FailureMidWriteLeavesThePreviousFileIntactAndNoTemporary) {
  ScratchDir dir;
  std::string path = dir / "model.safetensors";
  save_safetensors(path, {{"a", filled<float>({4}, DType::f32, 1.0f)}});
  std::string before = test::read_bytes(path);

  // A file-size limit makes the write fail part-way, as a full disk would (EFBIG instead of
  // ENOSPC; SIGXFSZ ignored so the process lives to report it).
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto previous_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  Tensor big = filled<float>({4096}, DType::f32, 9.0f);  // 16 KiB: past the limit
  expect_error([&] { save_safetensors(path, {{"a", filled<float>({4}, DType::f32, 9.0f)}, {"z", big}}); },
               {path});
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, previous_handler);
  EXPECT_EQ(test::read_bytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsWriter, RejectsDuplicateAndReservedNames) {
  ScratchDir dir;
  Tensor t = filled<float>({1}, DType::f32, 0.0f);
  expect_error([&] { save_safetensors(dir / "x.safetensors", {{"a", t}, {"a", t}}); }, {"tensor 'a'", "unique"});
  expect_error([&] { save_safetensors(dir / "x.safetensors", {{"__metadata__", t}}); }, {"__metadata__"});
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafetensorsModel, SingleFileAndShardedFolderWithIndex) {
  ScratchDir single;
  save_safetensors(single / "model.safetensors", {{"x", filled<float>({2}, DType::f32, 1.0f)}});
  SafetensorsModel one = SafetensorsModel::open(single.path());
  EXPECT_EQ(one.names(), std::vector<std::string>{"x"});
  EXPECT_EQ(one.tensor("x").data_as<float>()[1], 2.0f);

  ScratchDir dir;
  save_safetensors(dir / "model-00001-of-00002.safetensors",
                   {{"a", filled<float>({2}, DType::f32, 1.0f)}, {"b", filled<uint8_t>({3}, DType::u8, 4)}});
  save_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", filled<int32_t>({2, 2}, DType::i32, 10)}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"metadata": {"total_size": 27}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}})");
  SafetensorsModel model = SafetensorsModel::open(dir.path());
  EXPECT_EQ(model.files().size(), 2u);
  EXPECT_EQ(model.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(model.contains("c"));
  EXPECT_EQ(model.tensor("c").data_as<int32_t>()[3], 13);
  EXPECT_EQ(model.tensor("b").data_as<uint8_t>()[2], 6);
  EXPECT_EQ(model.shape("c"), (Shape{2, 2}));
  expect_error([&] { model.tensor("d"); }, {dir.path(), "tensor 'd' not found"});
}

TEST(SafetensorsModel, IndexErrorsNameTheIndexTheTensorAndTheShard) {
  ScratchDir dir;
  save_safetensors(dir / "s1.safetensors", {{"a", filled<float>({2}, DType::f32, 1.0f)}});
  std::string index = dir / "model.safetensors.index.json";
  write_bytes(index, R"({"weight_map": {"a": "s1.safetensors", "ghost": "s1.safetensors"}})");
  expect_error([&] { SafetensorsModel::open(dir.path()); }, {index, "tensor 'ghost'", "s1.safetensors", "no such tensor"});
  write_bytes(index, R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  expect_error([&] { SafetensorsModel::open(dir.path()); }, {index, "s2.safetensors", "cannot open"});
  write_bytes(index, R"({"weight_map": {"a": "../s1.safetensors"}})");
  expect_error([&] { SafetensorsModel::open(dir.path()); }, {index, "expected a file name inside"});
  write_bytes(index, R"({"metadata": {}})");
  expect_error([&] { SafetensorsModel::open(dir.path()); }, {index, "weight_map"});

  ScratchDir empty;
  expect_error([&] { SafetensorsModel::open(empty.path()); }, {empty.path(), "no model.safetensors"});
}

// Inputs found by fuzz/fuzz_safetensors and fuzz/fuzz_safetensors_index (issue 5).

TEST(Safetensors, FromBytesValidatesAsOpenDoes) {
  std::string good = safetensors_bytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xy");
  SafetensorsFile file = SafetensorsFile::from_bytes(good, "memory.safetensors");
  EXPECT_EQ(file.tensor("a").data_as<uint8_t>()[1], 'y');
  std::string overlapping = safetensors_bytes(
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", "xyz");
  expect_error([&] { SafetensorsFile::from_bytes(overlapping, "memory.safetensors"); },
               {"memory.safetensors", "tensor 'b'", "overlap tensor 'a'"});
  expect_error([&] { SafetensorsFile::from_bytes("abc", "memory.safetensors"); }, {"memory.safetensors", "expected at least"});
}

TEST_F(BadSafetensors, DeeplyNestedHeaderIsAnErrorNotAStackOverflow) {
  // Error messages dump the offending value, and dumping recurses: 200k levels crashed it.
  std::string header = R"({"a":{"dtype":"U8","shape":)" + test::nested_json_arrays(200000) + R"(,"data_offsets":[0,1]}})";
  std::string path = write(header, "x");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "deeper than 128 levels"});
}

TEST(SafetensorsModel, DeeplyNestedIndexIsAnErrorNotAStackOverflow) {
  ScratchDir dir;
  save_safetensors(dir / "s1.safetensors", {{"a", Tensor::zeros({1}, DType::f32)}});
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": )" + test::nested_json_arrays(200000) + "}}");
  expect_error([&] { SafetensorsModel::open(dir.path()); }, {"model.safetensors.index.json", "deeper than 128 levels"});
}

}  // namespace
}  // namespace nibble
