// config.json: the model shape, RoPE scaling and the bitsandbytes quantization_config block.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "nibble/core/json_depth.h"
#include "nibble/io/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // As read_config_json reads it (nesting bounded): text that is not JSON is that function's
  // nibble::Error.
  nlohmann::ordered_json json;
  try {
    json = nlohmann::ordered_json::parse(data, data + size,
                                         nibble::json_depth_limit<nlohmann::ordered_json>("config.json"));
  } catch (const nlohmann::json::exception&) {
    return 0;
  } catch (const nibble::Error&) {
    return 0;
  }
  nibble::fuzz::expect_only_nibble_errors([&] { (void)nibble::parse_model_config(json, "config.json"); });
  return 0;
}
