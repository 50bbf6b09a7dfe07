// AdamW over the trainable (LoRA) tensors, in the three forms transformers users pick with
// `optim`:
//   adamw (also adamw_torch): torch.optim.AdamW's arithmetic, float32 states in host or device
//       memory.
//   paged_adamw_32bit: bitsandbytes' AdamW kernel arithmetic (update, then decay), float32
//       states; on the GPU, states of tensors >= 1e5 elements in managed memory (state_buffer.h).
//   paged_adamw_8bit: bitsandbytes' blockwise 8-bit states (adamw_cpu.h) for tensors >= 4096
//       elements, 32-bit bnb-rule states below that; paged as paged_adamw_32bit.
// transformers maps the two paged names to bnb.optim.AdamW(optim_bits=32|8, is_paged=True), so
// nibble uses bitsandbytes' semantics exactly for those and torch's for adamw.
//
// Parameters, gradients and states are float32 and stay where the parameters are (cpu or cuda).
// On the GPU the update is queued on the legacy default stream; nothing synchronizes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nibble/core/tensor.h"
#include "nibble/optim/adamw_math.h"
#include "nibble/optim/state_buffer.h"

namespace nibble {

enum class AdamwVariant : uint8_t { adamw, paged_adamw_32bit, paged_adamw_8bit };

std::string_view adamw_variant_name(AdamwVariant variant);
// Accepts adamw (also adamw_torch, adamw_32bit), paged_adamw_32bit and paged_adamw_8bit; throws
// nibble::Error naming them otherwise.
AdamwVariant parse_adamw_variant(std::string_view name);
AdamwRule adamw_variant_rule(AdamwVariant variant);
// Bytes of optimizer state of one tensor of `numel` elements; `nibble memory` predicts with it.
int64_t adamw_state_bytes(int64_t numel, AdamwVariant variant);
// Whether a tensor of `numel` elements keeps 8-bit state under `variant`.
bool adamw_uses_8bit(int64_t numel, AdamwVariant variant);

struct OptimParam {
  std::string name;  // unique; names its states in state_tensors()
  Tensor param;      // F32 [any shape], updated in place
  Tensor grad;       // F32, same shape and device as param
};

class AdamwOptimizer {
 public:
  AdamwOptimizer(AdamwVariant variant, const AdamwHyper& hyper, std::vector<OptimParam> params);
  ~AdamwOptimizer();
  AdamwOptimizer(AdamwOptimizer&&) noexcept;
  AdamwOptimizer& operator=(AdamwOptimizer&&) noexcept;

  // One update of every parameter from its gradient with learning rate `lr` (the schedule's value
  // for this update). The step counter starts at 0 and is 1 during the first update.
  void step(double lr);

  AdamwVariant variant() const { return variant_; }
  const AdamwHyper& hyper() const { return hyper_; }
  int64_t steps_taken() const { return step_; }
  Device device() const { return device_; }
  int64_t state_bytes() const;

  // The state as CPU tensors, for a checkpoint (io's save_safetensors writes them as they are):
  //   "optimizer.step"                  I64 [1]
  //   "optimizer.<name>.exp_avg"        F32 [param shape]    (32-bit state)
  //   "optimizer.<name>.exp_avg_sq"     F32 [param shape]
  //   "optimizer.<name>.exp_avg.codes"  U8  [param shape]    (8-bit state: signed map)
  //   "optimizer.<name>.exp_avg.absmax" F32 [ceil(n/256)]
  //   "optimizer.<name>.exp_avg_sq.codes" / ".absmax"        (unsigned map)
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Restores exactly what state_tensors() produced (bytes copied as they are). Every expected
  // name must be present with its dtype and shape; extra names are ignored (a checkpoint holds
  // other things too). Throws nibble::Error naming the first tensor that is missing or wrong.
  void load_state_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors);

 private:
  struct ParamState;

  AdamwVariant variant_;
  AdamwHyper hyper_;
  Device device_ = Device::cpu;
  int64_t step_ = 0;
  std::vector<OptimParam> params_;
  std::vector<ParamState> states_;
  StateBuffer slices_;  // device tables of the fused 32-bit kernel (AdamwSlice, AdamwChunk)
  StateBuffer chunks_;
  int64_t chunk_count_ = 0;
};

}  // namespace nibble
