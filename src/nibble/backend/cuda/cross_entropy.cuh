// Token cross-entropy over logits rows with its gradient in the same pass, for the LM head.
// The caller may feed the batch in chunks of rows; backend.h says how the mean is formed.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// losses F32 [T] = logsumexp(logits[t]) - logits[t, labels[t]] (0 where labels[t] == -100);
// dlogits (may be null, may equal logits) [T, V] = (softmax - onehot) * grad_scale, zeros for
// ignored rows. A label outside [0, V) other than -100 leaves its row's outputs at 0 and is
// recorded in *bad_index (pack_bad_index: the smallest such token wins). One block per row.
void cross_entropy_launch(float* losses, void* dlogits, DType dlogits_dtype, const void* logits, DType logits_dtype,
                          const int32_t* labels, int64_t T, int64_t V, float grad_scale,
                          unsigned long long* bad_index, cudaStream_t stream);

}  // namespace nibble::cuda
