// The 4-bit linear shared by every backend: dequantize the NF4/FP4 weight (with or without
// Double Quantization) into a caller-given workspace, then the backend's ordinary GEMM. The CUDA
// backend sends calls with few tokens to a fused GEMV instead (cuda/gemv_4bit.cuh); both paths
// validate their arguments with check_linear_4bit_forward.
#pragma once

#include "nibble/backend/backend.h"
#include "nibble/backend/op_checks.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

// Throws nibble::Error naming linear_4bit_forward and the argument unless w is a consistent 4-bit
// weight [N, K] on `device`, x [T, K] and y [T, N] share an activation dtype, bias (may be null)
// is [N] in it, and workspace holds N*K elements of it. Returns T, K, N.
LinearDims check_linear_4bit_forward(Device device, const Tensor& y, const Tensor& x, const QuantizedWeight& w,
                                     const Tensor* bias, const Tensor& workspace);

// y[T, N] = x[T, K] @ dequantize(w)[N, K]^T (+ bias[N]); w.shape = [N, K]. workspace holds N*K
// elements of x's dtype on the backend's device (any shape) and receives the dequantized weight.
// cuda_stream is the backend's cudaStream_t (nullptr on the CPU), so the dequantize is ordered
// before the GEMM without a synchronize.
void linear_4bit_forward_with(Backend& backend, void* cuda_stream, Tensor& y, const Tensor& x,
                              const QuantizedWeight& w, const Tensor* bias, Tensor& workspace);

// The input gradient, same scheme: dx[T, K] = dy[T, N] @ dequantize(w)[N, K] through
// backend.linear_backward, after the checks linear_4bit_backward names.
void linear_4bit_backward_with(Backend& backend, void* cuda_stream, Tensor& dx, const Tensor& dy,
                               const QuantizedWeight& w, Tensor& workspace);

}  // namespace nibble
