#include "nibble/quant/quant_state.h"

namespace nibble {

std::string_view quant_type_name(QuantType type) { return type == QuantType::nf4 ? "nf4" : "fp4"; }

QuantType parse_quant_type(std::string_view name) {
  if (name == "nf4") return QuantType::nf4;
  if (name == "fp4") return QuantType::fp4;
  fail("unknown 4-bit quant type '{}': expected nf4 or fp4", name);
}

}  // namespace nibble
