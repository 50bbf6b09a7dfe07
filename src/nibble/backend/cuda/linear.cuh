// Linear layers through cuBLAS: the forward y[T, N] = x[T, K] @ w[N, K]^T (+ bias[N]), its input
// gradient, and the general GEMM LoRA uses. fp32 accumulation (CUBLAS_COMPUTE_32F, no TF32),
// each result rounded once to its dtype.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// `handle` must already be bound to `stream`. bias may be null.
void linear_forward_launch(cublasHandle_t handle, void* y, const void* x, const void* w, const void* bias, int64_t T,
                           int64_t K, int64_t N, DType dtype, cudaStream_t stream);

// dx[T, K] = dy[T, N] @ w[N, K], one dtype.
void linear_backward_launch(cublasHandle_t handle, void* dx, const void* dy, const void* w, int64_t T, int64_t K,
                            int64_t N, DType dtype, cudaStream_t stream);

// Whether gemm_launch takes these dtypes as they are: a and b of one dtype, out of theirs or F32
// (the combinations cublasGemmEx computes in fp32). Others need a and b widened to F32 first.
bool gemm_dtypes_supported(DType out, DType a, DType b);

// out[M, N] = alpha * op(a)[M, K] @ op(b)[K, N] + beta * out, row-major; op(a) = a^T (a stored
// [K, M]) when trans_a, likewise b. With beta == 0 out is not read.
void gemm_launch(cublasHandle_t handle, void* out, DType out_dtype, const void* a, bool trans_a, const void* b,
                 bool trans_b, DType ab_dtype, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                 cudaStream_t stream);

}  // namespace nibble::cuda
