#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "io_test_util.h"
#include "nibble/io/bnb_checkpoint.h"

namespace nibble {
namespace {

using test::expect_error;

// A DQ (or plain) weight of shape [64, 128], B = 64, with recognisable bytes in every piece.
QuantizedWeight make_weight(bool double_quant) {
  QuantizedWeight w;
  w.type = QuantType::nf4;
  w.blocksize = 64;
  w.dtype = DType::bf16;
  w.shape = {64, 128};
  w.packed = Tensor::empty({4096, 1}, DType::u8);
  for (int i = 0; i < 4096; ++i) w.packed.data_as<uint8_t>()[i] = static_cast<uint8_t>(i * 37 + 1);
  w.code = Tensor::empty({16}, DType::f32);
  for (int i = 0; i < 16; ++i) w.code.data_as<float>()[i] = -1.0f + static_cast<float>(i) / 7.5f;
  w.double_quant = double_quant;
  if (double_quant) {
    w.absmax = Tensor::empty({128}, DType::u8);
    for (int i = 0; i < 128; ++i) w.absmax.data_as<uint8_t>()[i] = static_cast<uint8_t>(255 - i);
    w.nested_absmax = Tensor::empty({1}, DType::f32);
    w.nested_absmax.data_as<float>()[0] = 0.0125f;
    w.nested_code = Tensor::empty({256}, DType::f32);
    for (int i = 0; i < 256; ++i) w.nested_code.data_as<float>()[i] = static_cast<float>(i - 127) / 128.0f;
    w.offset = 0.050937652587890625f;
  } else {
    w.absmax = Tensor::empty({128}, DType::f32);
    for (int i = 0; i < 128; ++i) w.absmax.data_as<float>()[i] = 0.01f * static_cast<float>(i + 1);
  }
  return w;
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.data()), t.nbytes()); }

TEST(BnbCheckpoint, Tv12JsonBlobsAreByteExact) {
  std::string with_dq = bnb_quant_state_json(make_weight(true));
  EXPECT_EQ(with_dq, R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [64, 128], )"
                     R"("nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.050937652587890625})");
  EXPECT_EQ(with_dq.size(), 170u);
  std::string plain = bnb_quant_state_json(make_weight(false));
  EXPECT_EQ(plain, R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [64, 128]})");
  EXPECT_EQ(plain.size(), 79u);
}

TEST(BnbCheckpoint, TensorNamesDtypesAndShapesAreBitsandbytes) {
  auto tensors = bnb_weight_tensors("model.layers.0.mlp.up_proj.", make_weight(true));
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  std::string p = "model.layers.0.mlp.up_proj.weight";
  EXPECT_EQ(names, (std::vector<std::string>{p, p + ".absmax", p + ".quant_map", p + ".nested_absmax",
                                             p + ".nested_quant_map", p + ".quant_state.bitsandbytes__nf4"}));
  EXPECT_EQ(tensors.back().second.dtype(), DType::u8);
  EXPECT_EQ(tensors.back().second.shape(), Shape{170});
}

TEST(BnbCheckpoint, RoundTripThroughAFolderWithAndWithoutDoubleQuant) {
  for (bool dq : {true, false}) {
    test::ScratchDir dir;
    QuantizedWeight w = make_weight(dq);
    auto tensors = bnb_weight_tensors("model.layers.0.self_attn.q_proj", w);
    tensors.emplace_back("model.norm.weight", Tensor::zeros({128}, DType::bf16));
    save_safetensors(dir / "model.safetensors", tensors);
    SafetensorsModel model = SafetensorsModel::open(dir.path());

    std::string name = "model.layers.0.self_attn.q_proj.weight";
    EXPECT_EQ(list_bnb_quantized_weights(model), std::vector<std::string>{name});
    EXPECT_TRUE(is_bnb_quantized_weight(model, name));
    EXPECT_FALSE(is_bnb_quantized_weight(model, "model.norm.weight"));
    EXPECT_TRUE(is_bnb_auxiliary_tensor(name + ".absmax"));
    EXPECT_TRUE(is_bnb_auxiliary_tensor(name + ".quant_state.bitsandbytes__nf4"));
    EXPECT_FALSE(is_bnb_auxiliary_tensor(name));

    QuantizedWeight r = load_bnb_weight(model, name);
    EXPECT_EQ(r.type, w.type);
    EXPECT_EQ(r.blocksize, 64);
    EXPECT_EQ(r.dtype, DType::bf16);
    EXPECT_EQ(r.shape, w.shape);
    EXPECT_EQ(r.double_quant, dq);
    EXPECT_EQ(bytes_of(r.packed), bytes_of(w.packed));
    EXPECT_EQ(bytes_of(r.absmax), bytes_of(w.absmax));
    EXPECT_EQ(bytes_of(r.code), bytes_of(w.code));
    if (dq) {
      EXPECT_EQ(r.offset, w.offset);
      EXPECT_EQ(r.nested_blocksize, 256);
      EXPECT_EQ(bytes_of(r.nested_absmax), bytes_of(w.nested_absmax));
      EXPECT_EQ(bytes_of(r.nested_code), bytes_of(w.nested_code));
    }
  }
}

TEST(BnbCheckpoint, Bf16QuantStorageIsReadAsTheSameBytes) {
  test::ScratchDir dir;
  QuantizedWeight w = make_weight(true);
  auto tensors = bnb_weight_tensors("m", w);
  tensors[0].second = w.packed.view_as(DType::bf16, {2048, 1});
  save_safetensors(dir / "model.safetensors", tensors);
  QuantizedWeight r = load_bnb_weight(SafetensorsModel::open(dir.path()), "m.weight");
  EXPECT_EQ(r.packed.dtype(), DType::u8);
  EXPECT_EQ(r.packed.shape(), (Shape{4096, 1}));
  EXPECT_EQ(bytes_of(r.packed), bytes_of(w.packed));
}

TEST(BnbCheckpoint, InconsistentPiecesNameTheFolderTheWeightAndTheExpectation) {
  test::ScratchDir dir;
  auto save_with = [&](const std::string& piece, const Tensor& replacement) {
    auto tensors = bnb_weight_tensors("m", make_weight(true));
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [&](const auto& p) { return p.first == piece; }),
                  tensors.end());
    if (replacement.defined() && replacement.numel() > 0) tensors.emplace_back(piece, replacement);
    save_safetensors(dir / "model.safetensors", tensors);
    return SafetensorsModel::open(dir.path());
  };
  SafetensorsModel wrong_absmax = save_with("m.weight.absmax", Tensor::zeros({127}, DType::u8));
  expect_error([&] { load_bnb_weight(wrong_absmax, "m.weight"); },
               {dir.path(), "m.weight", "absmax is U8[127]", "expected U8[128]", "blocksize 64"});
  SafetensorsModel no_nested = save_with("m.weight.nested_absmax", Tensor());
  expect_error([&] { load_bnb_weight(no_nested, "m.weight"); }, {dir.path(), "m.weight.nested_absmax is missing"});
  SafetensorsModel short_packed = save_with("m.weight", Tensor::zeros({4095, 1}, DType::u8));
  expect_error([&] { load_bnb_weight(short_packed, "m.weight"); }, {"m.weight", "packed weight is U8[4095, 1]", "expected 4096 bytes"});

  std::string bad_json = R"({"quant_type": "fp4", "blocksize": 64, "dtype": "bfloat16", "shape": [64, 128]})";
  Tensor blob = Tensor::empty({static_cast<int64_t>(bad_json.size())}, DType::u8);
  std::memcpy(blob.data(), bad_json.data(), bad_json.size());
  SafetensorsModel mislabelled = save_with("m.weight.quant_state.bitsandbytes__nf4", blob);
  expect_error([&] { load_bnb_weight(mislabelled, "m.weight"); }, {"m.weight", "key 'quant_type' is \"fp4\"", "expected \"nf4\""});
  expect_error([&] { load_bnb_weight(wrong_absmax, "other.weight"); }, {"other.weight", "no quant_state"});
}

TEST(BnbCheckpoint, WriterRejectsAnInconsistentWeight) {
  QuantizedWeight w = make_weight(true);
  w.absmax = Tensor::zeros({128}, DType::f32);
  expect_error([&] { bnb_weight_tensors("m", w); }, {"m.weight", "absmax is F32[128]", "expected U8[128]"});
}

// Inputs found by fuzz/fuzz_bnb_quant_state (issue 5): sizes computed from the JSON's shape and
// block sizes overflowed int64 (undefined behaviour) before any check could see them.
TEST(BnbCheckpoint, OverflowingShapeOrBlockSizeInTheJsonIsAnError) {
  test::ScratchDir dir;
  auto load_with_json = [&](const std::string& json) {
    auto tensors = bnb_weight_tensors("m", make_weight(true));
    Tensor blob = Tensor::empty({static_cast<int64_t>(json.size())}, DType::u8);
    std::memcpy(blob.data(), json.data(), json.size());
    for (auto& [name, tensor] : tensors)
      if (name == "m.weight.quant_state.bitsandbytes__nf4") tensor = blob;
    save_safetensors(dir / "model.safetensors", tensors);
    load_bnb_weight(SafetensorsModel::open(dir.path()), "m.weight");
  };
  const std::string nested = R"(, "nested_dtype": "float32", "nested_offset": 0.05})";
  expect_error([&] { load_with_json(R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", )"
                                    R"("shape": [4294967296, 4294967296], "nested_blocksize": 256)" + nested); },
               {"m.weight", "more elements than fit in 64 bits"});
  expect_error([&] { load_with_json(R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", )"
                                    R"("shape": [9223372036854775807], "nested_blocksize": 256)" + nested); },
               {"m.weight", "expected at most 2^56"});
  expect_error([&] { load_with_json(R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", )"
                                    R"("shape": [64, 128], "nested_blocksize": 9223372036854775807)" + nested); },
               {"m.weight", "nested_blocksize 9223372036854775807", "up to 4096"});
}

}  // namespace
}  // namespace nibble
