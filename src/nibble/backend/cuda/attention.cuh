// Causal grouped-query attention, forward and (packed training) backward, scores and softmax
// in fp32. Correctness first: one block per (query, head) streaming over the keys with an
// online softmax, and for the backward one block per query row (dq) and one per key row
// (dk, dv); a later issue makes them fast (tiles, tensor cores).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// The largest head dim the kernel takes (each thread owns D / kAttentionThreads outputs).
constexpr int64_t kAttentionMaxHeadDim = 256;

// out[T, H, D] from q[T, H, D], k/v[S, KVH, D]; query t sees keys [0, S - T + t], or with
// seq_ids I32 [T] (then S == T) only those of its own run of equal ids. lse (may be null)
// receives F32 [H, T] log-sum-exp of the scaled scores.
void attention_forward_launch(void* out, float* lse, const void* q, const void* k, const void* v,
                              const int32_t* seq_ids, int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D,
                              DType dtype, cudaStream_t stream);

// dq[T, H, D], dk/dv[T, KVH, D] from dout, q, k, v, out and lse of the packed forward (same
// seq_ids). delta is an F32 [H, T] scratch the launch fills and reads.
void attention_backward_launch(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q,
                               const void* k, const void* v, const void* out, const float* lse,
                               const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D, DType dtype,
                               cudaStream_t stream);

}  // namespace nibble::cuda
