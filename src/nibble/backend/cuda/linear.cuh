// Linear forward through cuBLAS: y[T, N] = x[T, K] @ w[N, K]^T (+ bias[N]), fp32 accumulation
// (CUBLAS_COMPUTE_32F, no TF32), the result rounded once to the activation dtype.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// `handle` must already be bound to `stream`. bias may be null.
void linear_forward_launch(cublasHandle_t handle, void* y, const void* x, const void* w, const void* bias, int64_t T,
                           int64_t K, int64_t N, DType dtype, cudaStream_t stream);

}  // namespace nibble::cuda
