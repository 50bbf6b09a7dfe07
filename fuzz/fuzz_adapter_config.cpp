// adapter_config.json of a PEFT LoRA adapter. A config that parses is written back as PEFT writes
// it, so the writer sees every value the reader let through.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "nibble/core/json_depth.h"
#include "nibble/io/peft_adapter.h"
#include "nibble/io/python_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // As read_peft_adapter reads it (nesting bounded): text that is not JSON is that function's
  // nibble::Error.
  nlohmann::ordered_json json;
  try {
    json = nlohmann::ordered_json::parse(data, data + size,
                                         nibble::json_depth_limit<nlohmann::ordered_json>("adapter_config.json"));
  } catch (const nlohmann::json::exception&) {
    return 0;
  } catch (const nibble::Error&) {
    return 0;
  }
  nibble::fuzz::expect_only_nibble_errors([&] {
    nibble::LoraConfig config = nibble::peft_config_from_json(json, "adapter_config.json");
    (void)nibble::python_json_dumps(nibble::peft_config_to_json(config), 2, true);
  });
  return 0;
}
