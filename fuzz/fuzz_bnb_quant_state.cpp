// The quant_state JSON blob of a bitsandbytes 4-bit weight (…weight.quant_state.bitsandbytes__nf4).
// The folder holds two well-formed 8x8 weights, one with double quantization and one without,
// each with the input as its blob, so the JSON's shape, blocksize and nested_* fields are checked
// against real pieces on both paths.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "nibble/io/bnb_checkpoint.h"
#include "nibble/io/safetensors.h"

namespace {

struct Piece {
  const char* name;
  const char* dtype;
  int64_t elements;  // all pieces are 1-D except the packed weights, [32, 1]
  int64_t element_bytes;
};

// The file's bytes, laid out by hand: save_safetensors fsyncs, which would dominate each run.
std::string model_bytes(const std::string& blob) {
  const Piece pieces[] = {
      {"dq.weight", "U8", 32, 1},          {"dq.weight.absmax", "U8", 1, 1},
      {"dq.weight.quant_map", "F32", 16, 4}, {"dq.weight.nested_absmax", "F32", 1, 4},
      {"dq.weight.nested_quant_map", "F32", 256, 4}, {"plain.weight", "U8", 32, 1},
      {"plain.weight.absmax", "F32", 1, 4},   {"plain.weight.quant_map", "F32", 16, 4}};
  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const Piece& p : pieces) {
    nlohmann::json shape = p.elements == 32 ? nlohmann::json{32, 1} : nlohmann::json{p.elements};
    int64_t bytes = p.elements * p.element_bytes;
    header[p.name] = {{"dtype", p.dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string data(static_cast<size_t>(offset), '\0');
  const auto blob_size = static_cast<int64_t>(blob.size());
  for (const char* name : {"dq.weight.quant_state.bitsandbytes__nf4", "plain.weight.quant_state.bitsandbytes__fp4"}) {
    header[name] = {{"dtype", "U8"}, {"shape", {blob_size}}, {"data_offsets", {offset, offset + blob_size}}};
    offset += blob_size;
    data += blob;
  }
  std::string text = header.dump();
  uint64_t length = text.size();
  return std::string(reinterpret_cast<const char*>(&length), 8) + text + data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = nibble::fuzz::scratch_dir();
  nibble::fuzz::write_file(dir + "/model.safetensors", model_bytes(nibble::fuzz::as_text(data, size)));
  auto model = nibble::SafetensorsModel::open(dir);
  for (const std::string& name : nibble::list_bnb_quantized_weights(model))
    nibble::fuzz::expect_only_nibble_errors([&] { (void)nibble::load_bnb_weight(model, name); });
  return 0;
}
