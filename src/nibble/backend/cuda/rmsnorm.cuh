// RMSNorm as HF's LlamaRMSNorm: fp32 normalization, cast, then the weight product; and its
// input gradient (the weight is frozen).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// out[T, C] = round(weight[C] * round(x * rsqrt(mean(x^2) + eps))); one block per row. rstd
// (may be null) receives F32 [T] rsqrt(mean(x^2) + eps).
void rmsnorm_forward_launch(void* out, float* rstd, const void* x, const void* weight, float eps, int64_t T,
                            int64_t C, DType dtype, cudaStream_t stream);

// x[T, C] = round(x + delta), then out = rmsnorm_forward's out of that x (no rstd): the residual add
// and the next norm in one kernel, with the two launches' numbers bit for bit.
void add_rmsnorm_forward_launch(void* x, void* out, const void* delta, const void* weight, float eps, int64_t T,
                                int64_t C, DType dtype, cudaStream_t stream);

// dx[T, C] = rstd * (g - x * rstd^2 * mean(g * x)), g = dy * weight, in fp32; rstd F32 [T] from
// the forward, or null to recompute it as the forward does. One block per row.
void rmsnorm_backward_launch(void* dx, const void* dy, const void* x, const void* weight, const float* rstd,
                             float eps, int64_t T, int64_t C, DType dtype, cudaStream_t stream);

}  // namespace nibble::cuda
