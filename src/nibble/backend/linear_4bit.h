// The 4-bit linear shared by every backend: dequantize the NF4/FP4 weight (with or without
// Double Quantization) into a caller-given workspace, then the backend's ordinary GEMM. Kept in
// one function so a fused dequantize-GEMM can later replace it in one place.
#pragma once

#include "nibble/backend/backend.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// y[T, N] = x[T, K] @ dequantize(w)[N, K]^T (+ bias[N]); w.shape = [N, K]. workspace holds N*K
// elements of x's dtype on the backend's device (any shape) and receives the dequantized weight.
// cuda_stream is the backend's cudaStream_t (nullptr on the CPU), so the dequantize is ordered
// before the GEMM without a synchronize.
void linear_4bit_forward_with(Backend& backend, void* cuda_stream, Tensor& y, const Tensor& x,
                              const QuantizedWeight& w, const Tensor* bias, Tensor& workspace);

}  // namespace nibble
