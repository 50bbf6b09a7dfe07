// model.safetensors.index.json in a folder that holds two small valid shards: the weight_map
// decides which shard files are opened and which tensors are looked up in them.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "nibble/io/safetensors.h"

namespace {

const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string& d = nibble::fuzz::scratch_dir();
    auto f32 = [](int64_t n) { return nibble::Tensor::zeros({n}, nibble::DType::f32); };
    nibble::save_safetensors(d + "/model-00001-of-00002.safetensors",
                             {{"model.embed_tokens.weight", f32(4)}, {"model.norm.weight", f32(2)}});
    nibble::save_safetensors(d + "/model-00002-of-00002.safetensors", {{"lm_head.weight", f32(4)}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = model_dir();
  nibble::fuzz::write_file(dir + "/model.safetensors.index.json", nibble::fuzz::as_text(data, size));
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto model = nibble::SafetensorsModel::open(dir);
    for (const std::string& name : model.names()) {
      (void)model.shape(name);
      (void)model.tensor(name);
    }
  });
  return 0;
}
