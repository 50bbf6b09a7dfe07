// Causal grouped-query attention, forward and (packed training) backward, scores and softmax
// in fp32. Correctness first: one block per (query, head) streaming over the keys with an
// online softmax, and for the backward one block per query row (dq) and one per key row
// (dk, dv). BF16 with D <= 128 goes to the tensor-core kernels of flash_attention.cu instead
// (the launch functions below dispatch); these serve F32, F16 and larger head dims. Attention
// over a KV cache with the positions on the device (decoding) has a kernel of its own that
// spreads each tile of keys over the whole block (attention.cu: attention_cached_kernel); the KV
// cache write is here too.
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

// The same with positions (I32 [T], may be null): query t sees keys [0, positions[t]] of k/v
// [S, KVH, D] (a whole KV cache); a position outside [0, S) is recorded in *bad_index
// (pack_bad_index: the smallest such token wins) and that query's output is not written.
void attention_cached_forward_launch(void* out, float* lse, const void* q, const void* k, const void* v,
                                     const int32_t* seq_ids, const int32_t* positions, unsigned long long* bad_index,
                                     int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D, DType dtype,
                                     cudaStream_t stream);

// k_cache/v_cache [P, KVH, D] rows positions[t] = k/v [T, KVH, D] row t; a position outside
// [0, P) is recorded in *bad_index and that token is not written.
void kv_cache_write_launch(void* k_cache, void* v_cache, const void* k, const void* v, const int32_t* positions,
                           int64_t T, int64_t P, int64_t KVH, int64_t D, DType dtype, unsigned long long* bad_index,
                           cudaStream_t stream);

// dq[T, H, D], dk/dv[T, KVH, D] from dout, q, k, v, out and lse of the packed forward (same
// seq_ids). delta is an F32 [H, T] scratch the launch fills and reads.
void attention_backward_launch(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q,
                               const void* k, const void* v, const void* out, const float* lse,
                               const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D, DType dtype,
                               cudaStream_t stream);

}  // namespace nibble::cuda
