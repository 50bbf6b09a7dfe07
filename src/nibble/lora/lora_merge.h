// Folding an adapter into its base weight: W' = W + scaling * B @ A (PEFT's merge_and_unload for
// fan_in_fan_out = false), on the CPU.
//
// Precision: W is widened to fp32, B @ A is summed over R in fp32 (R is small: the order of
// summation changes the result by at most ~R ulps of sum|B||A|), scaled, added, and rounded once
// to `out`. A 4-bit base is dequantized to fp32 first; the merged weight is never re-quantized,
// so `nibble merge` gives a bf16 model, as merging onto a bf16-loaded base does in PEFT.
#pragma once

#include "nibble/core/tensor.h"
#include "nibble/lora/lora_adapter.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// weight: [N, K] F32, BF16 or F16, on any device. Returns [N, K] in `out` (F32, BF16 or F16) on the CPU.
Tensor lora_merge(const Tensor& weight /* [N, K] */, const LoraLinear& adapter, DType out = DType::bf16);

// The same with a 4-bit base (dequantized to fp32 with quant/'s dequantize_4bit).
Tensor lora_merge_4bit(const QuantizedWeight& weight /* [N, K] */, const LoraLinear& adapter,
                       DType out = DType::bf16);

}  // namespace nibble
