// A whole .safetensors file: header length, header JSON, byte buffer. Every tensor the header
// accepts is then read end to end, so AddressSanitizer sees any view reaching outside the bytes.
#include "fuzz_common.h"
#include "nibble/io/safetensors.h"

namespace {

uint8_t read_every_byte(const nibble::Tensor& t) {
  const auto* bytes = static_cast<const uint8_t*>(t.data());
  uint8_t sum = 0;
  for (size_t i = 0; i < t.nbytes(); ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto file = nibble::SafetensorsFile::from_bytes(nibble::fuzz::as_text(data, size), "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const std::string& name : file.names()) {
      (void)file.shape(name);
      if (!nibble::dtype_from_safetensors_name(file.dtype_name(name))) continue;  // F8/F4/C64: header only
      sink = sink + read_every_byte(file.tensor(name));
    }
    for (const auto& [key, value] : file.metadata()) sink = sink + static_cast<uint8_t>(key.size() + value.size());
  });
  return 0;
}
