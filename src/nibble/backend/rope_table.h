// RoPE frequencies and the cos/sin table, built exactly as transformers builds them in fp32
// (modeling_rope_utils: _compute_default/_linear/_llama3_parameters, LlamaRotaryEmbedding).
// Every step below is an fp32 operation in transformers, so it is one here, in the same order;
// where torch computes `scalar / tensor` it multiplies by the tensor's reciprocal
// (Tensor.__rtruediv__), and so do we.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "nibble/core/rope_config.h"
#include "nibble/core/tensor.h"

namespace nibble {

// inv_freq[D/2], fp32 as transformers computes it (attention_scaling is 1 for these types).
std::vector<float> rope_inv_freq(const RopeConfig& config, int64_t head_dim /* D, even */);

// cos and sin of positions 0..P-1: F32 [P, D/2] each. transformers repeats the D/2 angles
// twice (emb = cat(freqs, freqs)), so column j serves both dimension j and j + D/2.
struct RopeTable {
  Tensor cos;  // F32 [P, D/2]
  Tensor sin;  // F32 [P, D/2]
  int64_t head_dim() const { return cos.rank() == 2 ? 2 * cos.dim(1) : 0; }
  int64_t positions() const { return cos.rank() == 2 ? cos.dim(0) : 0; }
  Device device() const { return cos.device(); }
};

// angle = fp32(float(p) * inv_freq[j]) as transformers' fp32 matmul of a length-1 inner
// dimension; cos/sin of that fp32 angle, correctly rounded to fp32.
RopeTable rope_table_build(const RopeConfig& config, int64_t head_dim /* D */, int64_t positions, Device device);

}  // namespace nibble
