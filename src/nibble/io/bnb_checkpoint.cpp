#include "nibble/io/bnb_checkpoint.h"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/core/json_depth.h"
#include "nibble/io/python_json.h"

namespace nibble {

namespace {

using Json = nlohmann::ordered_json;

// quant/ will own these names; io keeps its own two-line copy so it does not link quant sources.

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const std::string kBlobPrefix = ".quant_state.bitsandbytes__";

void expect_tensor(const Tensor& t, DType dtype, const Shape& shape, const std::string& where, const std::string& what,
                   const std::string& why) {
  NIBBLE_CHECK(t.defined() && t.dtype() == dtype && t.shape() == shape, "{}: {} is {}; expected {}{} ({})", where,
               what, t.defined() ? t.describe() : std::string("missing"), dtype_safetensors_name(dtype),
               shape_to_string(shape), why);
}

// Far below 2^63, so that (n + 1) / 2 and n + blocksize - 1 cannot overflow; 2^56 elements is
// a 64-petabyte weight.
constexpr int64_t kMaxWeightElements = int64_t{1} << 56;

int64_t weight_numel(const Shape& shape, const std::string& where) {
  int64_t n = 0;
  try {
    n = shape_numel(shape);  // throws when the product itself overflows
  } catch (...) {
    rethrow_with_context(where);
  }
  NIBBLE_CHECK(n <= kMaxWeightElements, "{}: shape {} has {} elements; expected at most 2^56", where,
               shape_to_string(shape), n);
  return n;
}

// The rules every piece of a QuantizedWeight follows, for the writer and the reader alike.
void validate(const QuantizedWeight& w, const std::string& where) {
  NIBBLE_CHECK(w.dtype == DType::f32 || w.dtype == DType::f16 || w.dtype == DType::bf16,
               "{}: original dtype {}; expected float32, float16 or bfloat16", where, dtype_torch_name(w.dtype));
  NIBBLE_CHECK(w.blocksize >= 32 && w.blocksize <= 4096 && (w.blocksize & (w.blocksize - 1)) == 0,
               "{}: blocksize {}; expected a power of two from 32 to 4096", where, w.blocksize);
  int64_t n = weight_numel(w.shape, where);
  std::string from_shape = fmt::format("from shape {} and blocksize {}", shape_to_string(w.shape), w.blocksize);
  expect_tensor(w.packed, DType::u8, {(n + 1) / 2, 1}, where, "weight", "two 4-bit codes a byte, " + from_shape);
  expect_tensor(w.code, DType::f32, {16}, where, "quant_map", "the 16-entry 4-bit table");
  if (!w.double_quant) {
    expect_tensor(w.absmax, DType::f32, {w.blocks()}, where, "absmax", "one float per block, " + from_shape);
    return;
  }
  expect_tensor(w.absmax, DType::u8, {w.blocks()}, where, "absmax", "one 8-bit code per block with double quant, " + from_shape);
  NIBBLE_CHECK(w.nested_blocksize > 0 && w.nested_blocksize <= 4096, "{}: nested_blocksize {}; expected a positive "
               "block size up to 4096 (bitsandbytes uses 256)", where, w.nested_blocksize);
  int64_t nested_blocks = (w.blocks() + w.nested_blocksize - 1) / w.nested_blocksize;
  expect_tensor(w.nested_absmax, DType::f32, {nested_blocks}, where, "nested_absmax",
                fmt::format("one float per {} blocks", w.nested_blocksize));
  expect_tensor(w.nested_code, DType::f32, {256}, where, "nested_quant_map", "the 256-entry dynamic map");
}

std::string module_prefix(const std::string& module) {
  NIBBLE_CHECK(!module.empty(), "bnb checkpoint: empty module name");
  return module.back() == '.' ? module : module + ".";
}

}  // namespace

std::string bnb_quant_state_json(const QuantizedWeight& w) {
  Json j = Json::object();
  j["quant_type"] = quant_type_name(w.type);
  j["blocksize"] = w.blocksize;
  j["dtype"] = std::string(dtype_torch_name(w.dtype));
  j["shape"] = w.shape;
  if (w.double_quant) {
    j["nested_blocksize"] = w.nested_blocksize;
    j["nested_dtype"] = "float32";
    // bitsandbytes stores the float32 offset as a Python float: the same value as a double.
    j["nested_offset"] = static_cast<double>(w.offset);
  }
  return python_json_dumps(j);
}

std::vector<std::pair<std::string, Tensor>> bnb_weight_tensors(const std::string& module, const QuantizedWeight& w) {
  std::string p = module_prefix(module) + "weight";
  validate(w, p);
  std::string blob = bnb_quant_state_json(w);
  Tensor blob_tensor = Tensor::empty({static_cast<int64_t>(blob.size())}, DType::u8);
  std::copy(blob.begin(), blob.end(), blob_tensor.data_as<char>());

  std::vector<std::pair<std::string, Tensor>> out = {{p, w.packed}, {p + ".absmax", w.absmax}, {p + ".quant_map", w.code}};
  if (w.double_quant) {
    out.emplace_back(p + ".nested_absmax", w.nested_absmax);
    out.emplace_back(p + ".nested_quant_map", w.nested_code);
  }
  out.emplace_back(p + kBlobPrefix + std::string(quant_type_name(w.type)), blob_tensor);
  return out;
}

QuantizedWeight load_bnb_weight(const SafetensorsModel& model, const std::string& name) {
  std::string where = fmt::format("{}: {}", model.dir(), name);
  bool nf4 = model.contains(name + kBlobPrefix + "nf4"), fp4 = model.contains(name + kBlobPrefix + "fp4");
  NIBBLE_CHECK(nf4 != fp4, "{}: {} quant_state blobs; expected exactly one {}bitsandbytes__nf4 or __fp4", where,
               nf4 ? "two" : "no", kBlobPrefix.substr(1));
  QuantizedWeight w;
  w.type = nf4 ? QuantType::nf4 : QuantType::fp4;
  std::string blob_name = name + kBlobPrefix + std::string(quant_type_name(w.type));

  Tensor blob = model.tensor(blob_name);
  NIBBLE_CHECK(blob.dtype() == DType::u8 && blob.rank() == 1, "{}: {} is {}; expected U8 bytes of JSON", where,
               blob_name, blob.describe());
  Json j;
  try {
    const char* text = static_cast<const char*>(blob.data());
    j = Json::parse(text, text + blob.nbytes(), json_depth_limit<Json>(where + ": " + blob_name));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {} is not valid JSON ({})", where, blob_name, e.what());
  }
  auto field = [&](const char* key, bool ok, const char* expected) -> const Json& {
    NIBBLE_CHECK(j.is_object() && j.contains(key) && ok, "{}: {} key '{}' is {}; expected {}", where, blob_name, key,
                 j.is_object() && j.contains(key) ? j[key].dump() : std::string("missing"), expected);
    return j[key];
  };
  auto has = [&](const char* key) { return j.is_object() && j.contains(key); };
  field("quant_type", has("quant_type") && j["quant_type"] == quant_type_name(w.type),
        nf4 ? "\"nf4\", as the blob's name says" : "\"fp4\", as the blob's name says");
  w.blocksize = field("blocksize", has("blocksize") && j["blocksize"].is_number_integer(), "an integer").get<int64_t>();
  std::optional<DType> dtype = has("dtype") && j["dtype"].is_string()
                                   ? dtype_from_torch_name(j["dtype"].get<std::string>()) : std::nullopt;
  field("dtype", dtype.has_value(), "a torch dtype name such as \"bfloat16\"");
  w.dtype = *dtype;
  const Json& shape = field("shape", has("shape") && j["shape"].is_array(), "a list of dimensions");
  for (const auto& d : shape) {
    NIBBLE_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, "{}: {} key 'shape' is {}; expected non-negative "
                 "integers", where, blob_name, shape.dump());
    w.shape.push_back(d.get<int64_t>());
  }
  w.double_quant = has("nested_offset") || has("nested_blocksize") || has("nested_dtype");
  if (w.double_quant) {
    w.nested_blocksize = field("nested_blocksize", has("nested_blocksize") && j["nested_blocksize"].is_number_integer(),
                               "an integer (all three nested_* keys come together)").get<int64_t>();
    field("nested_dtype", has("nested_dtype") && j["nested_dtype"] == "float32", "\"float32\"");
    // Parsed as a double and rounded to float32: the offset bitsandbytes computed was float32.
    w.offset = static_cast<float>(field("nested_offset", has("nested_offset") && j["nested_offset"].is_number(),
                                        "a number").get<double>());
  }

  auto piece = [&](const std::string& suffix) {
    NIBBLE_CHECK(model.contains(name + suffix), "{}: {}{} is missing; expected it beside {}", where, name, suffix,
                 blob_name);
    return model.tensor(name + suffix);
  };
  // quant_storage other than uint8 holds the same bytes under another dtype; shape
  // [(n+1)/(2*itemsize), 1].
  Tensor packed = model.tensor(name);
  int64_t packed_bytes = (weight_numel(w.shape, where) + 1) / 2;
  NIBBLE_CHECK(packed.rank() == 2 && packed.dim(1) == 1 && static_cast<int64_t>(packed.nbytes()) == packed_bytes,
               "{}: packed weight is {}; expected {} bytes as [{}, 1] of its storage dtype (from shape {})", where,
               packed.describe(), packed_bytes, packed_bytes / static_cast<int64_t>(dtype_size(packed.dtype())),
               shape_to_string(w.shape));
  w.packed = packed.view_as(DType::u8, {packed_bytes, 1});
  w.absmax = piece(".absmax");
  w.code = piece(".quant_map");
  if (w.double_quant) {
    w.nested_absmax = piece(".nested_absmax");
    w.nested_code = piece(".nested_quant_map");
  }
  validate(w, where);
  return w;
}

bool is_bnb_auxiliary_tensor(const std::string& name) {
  for (const char* suffix : {".weight.absmax", ".weight.quant_map", ".weight.nested_absmax", ".weight.nested_quant_map"})
    if (ends_with(name, suffix)) return true;
  return name.find(".weight" + kBlobPrefix) != std::string::npos;
}

bool is_bnb_quantized_weight(const SafetensorsModel& model, const std::string& weight_name) {
  return model.contains(weight_name + kBlobPrefix + "nf4") || model.contains(weight_name + kBlobPrefix + "fp4");
}

std::vector<std::string> list_bnb_quantized_weights(const SafetensorsModel& model) {
  std::vector<std::string> weights;
  for (const auto& name : model.names()) {
    size_t at = name.rfind(kBlobPrefix);
    if (at == std::string::npos) continue;
    std::string type = name.substr(at + kBlobPrefix.size());
    if (type == "nf4" || type == "fp4") weights.push_back(name.substr(0, at));
  }
  return weights;
}

}  // namespace nibble
