// Causal grouped-query attention forward (scores and softmax in fp32). Correctness first: one
// block per (query, head) streaming over the keys with an online softmax; a later issue makes
// it fast (tiles of queries, tensor cores).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// The largest head dim the kernel takes (each thread owns D / kAttentionThreads outputs).
constexpr int64_t kAttentionMaxHeadDim = 256;

// out[T, H, D] from q[T, H, D], k/v[S, KVH, D]; query t sees keys [0, S - T + t].
void attention_forward_launch(void* out, const void* q, const void* k, const void* v, int64_t T, int64_t S,
                              int64_t H, int64_t KVH, int64_t D, DType dtype, cudaStream_t stream);

}  // namespace nibble::cuda
