// Fused 4-bit GEMV for decoding: y[T, N] = x[T, K] @ dequantize(w)[N, K]^T (+ bias[N]) for a
// few tokens (T <= kGemv4bitMaxTokens), reading the packed weight once and never writing the
// dequantized weight to memory. Each weight element is exactly what dequantize_4bit writes in
// the activation dtype (bitsandbytes' value: table[code] * absmax rounded once), the products are
// summed in fp32, the bias added in fp32 and the result rounded once; only the summation order
// differs from the dequantize + GEMM path.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/tensor.h"
#include "nibble/quant/quant_cuda.h"
#include "nibble/quant/quant_state.h"

namespace nibble::cuda {

// Decoding steps and small speculative batches; larger T goes through dequantize + cuBLAS,
// whose GEMM reuses each weight element across the tokens.
constexpr int64_t kGemv4bitMaxTokens = 8;

// Raw launcher. w describes the packed [N, K] weight (w.n = N * K); x [T, K], y [T, N] and bias
// [N] (may be null) are device pointers of `dtype` (F32/F16/BF16); 1 <= T <= kGemv4bitMaxTokens.
// The launch is a dependent one (dependent_launch.cuh): the weight's codes and constants are read
// before waiting for the previous kernel, so they must not be the output of a kernel that lets
// its dependents start early (allow_dependents) and may still be running; x and bias are read,
// and y written, only after the wait.
void gemv_4bit_forward_launch(void* y, const void* x, const Dequant4bitArgs& w, int64_t N, int64_t K,
                              const void* bias, int64_t T, DType dtype, cudaStream_t stream);

// The validated entry point (the checks of linear_4bit_forward, plus T <= kGemv4bitMaxTokens).
// workspace is checked like the dequantize path's but not touched.
void gemv_4bit_forward(Tensor& y /* [T, N] */, const Tensor& x /* [T, K] */, const QuantizedWeight& w /* [N, K] */,
                       const Tensor* bias /* [N] */, const Tensor& workspace, cudaStream_t stream);

}  // namespace nibble::cuda
