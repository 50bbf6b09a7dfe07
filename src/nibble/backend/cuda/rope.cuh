// Rotary position embedding, in place, HF's rotate-half convention (pairs j and j + D/2).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// q[T, H, D] and k[T, KVH, D] rotated by the angles of positions[t] read from cos/sin
// F32 [P, D/2]. A token whose position is outside [0, P) is left as it is and recorded in
// *bad_index (pack_bad_index: the smallest such token wins).
void rope_forward_launch(void* q, void* k, const int32_t* positions, const float* cos, const float* sin, int64_t T,
                         int64_t H, int64_t KVH, int64_t D, int64_t P, DType dtype, unsigned long long* bad_index,
                         cudaStream_t stream);

// The gradient through rope_forward, in place on dq[T, H, D] and dk[T, KVH, D]: the rotation by
// the negative angle with the forward's roundings. Bad positions are recorded as above.
void rope_backward_launch(void* dq, void* dk, const int32_t* positions, const float* cos, const float* sin, int64_t T,
                          int64_t H, int64_t KVH, int64_t D, int64_t P, DType dtype, unsigned long long* bad_index,
                          cudaStream_t stream);

}  // namespace nibble::cuda
