// Rotary position embedding settings, as Hugging Face config.json gives them (rope_theta and
// rope_scaling / rope_parameters). Defined once: io/ parses them, backend/ builds the cos/sin
// table from them, model/ passes them along.
#pragma once

#include <cstdint>

namespace nibble {

// The types the Llama family uses; yarn, dynamic and longrope are rejected when parsed.
enum class RopeType : uint8_t { default_rope, linear, llama3 };

struct RopeConfig {
  RopeType type = RopeType::default_rope;
  double theta = 10000.0;  // rope_theta
  double factor = 1.0;     // linear and llama3
  // llama3 only: wavelengths above original/low_freq_factor are divided by factor, below
  // original/high_freq_factor kept, and interpolated in between.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

}  // namespace nibble
