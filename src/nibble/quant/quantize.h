// Public entry points of quant/: 4-bit quantization with optional Double Quantization, and
// dequantization, on the device of the input (cpu: the plain-loop reference; cuda: kernels that
// reproduce bitsandbytes' CUDA bytes). Arguments are validated here; errors name what was expected.
#pragma once

#include "nibble/core/tensor.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// weight: [any shape] F32/F16/BF16, contiguous, cpu or cuda. Outputs live on the same device; on
// cuda the packed codes are counted as base_weights and every constant as quant_constants.
QuantizedWeight quantize_4bit(const Tensor& weight /* [...] */, const QuantConfig& config);

// The weight in `out` dtype (F32/F16/BF16), shaped like the original, on the weight's device.
Tensor dequantize_4bit(const QuantizedWeight& w, DType out);

// Into a caller-provided tensor of w.numel() elements (any shape with that count) on w's
// device, so a backend can reuse one workspace. On cuda the work is queued on `cuda_stream`
// (a cudaStream_t; nullptr = the legacy default stream) and not waited for.
void dequantize_4bit_into(const QuantizedWeight& w, Tensor& out /* [numel] */, void* cuda_stream = nullptr);

// F32 [blocks] absmax per block, rebuilt from the DQ codes when w.double_quant.
Tensor dequantize_absmax(const QuantizedWeight& w);

// Throws nibble::Error naming `what` unless the fields, shapes, dtypes and devices of w agree.
void check_quantized_weight(const QuantizedWeight& w, const char* what);

}  // namespace nibble
