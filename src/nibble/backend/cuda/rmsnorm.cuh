// RMSNorm forward as HF's LlamaRMSNorm: fp32 normalization, cast, then the weight product.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// out[T, C] = round(weight[C] * round(x * rsqrt(mean(x^2) + eps))); one block per row.
void rmsnorm_forward_launch(void* out, const void* x, const void* weight, float eps, int64_t T, int64_t C,
                            DType dtype, cudaStream_t stream);

}  // namespace nibble::cuda
