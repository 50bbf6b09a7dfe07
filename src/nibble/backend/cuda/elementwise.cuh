// Embedding lookup, residual add, dtype cast and SwiGLU (forward and backward): one pass over memory each.
// Launchers take raw device pointers, sizes and the stream; the backend validates first.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

// out[T, C] = table[ids[t], :]; a token whose id is outside [0, V) is skipped and recorded in
// *bad_index (pack_bad_index: the smallest such token wins).
void embedding_forward_launch(void* out, const int32_t* ids, const void* table, int64_t T, int64_t C, int64_t V,
                              DType dtype, unsigned long long* bad_index, cudaStream_t stream);
// out[n] = a[n] + b[n], rounded once.
void add_forward_launch(void* out, const void* a, const void* b, int64_t n, DType dtype, cudaStream_t stream);
// out[n] = in[n] converted from in_dtype to out_dtype.
void cast_launch(void* out, DType out_dtype, const void* in, DType in_dtype, int64_t n, cudaStream_t stream);
// out[n] = keep(n) ? in[n] * scale : 0 with keep(n) = philox_uniform_at(seed, stream, n) >= p.
void dropout_launch(void* out, DType out_dtype, const void* in, DType in_dtype, int64_t n, float p, float scale,
                    uint64_t seed, uint64_t stream_id, cudaStream_t stream);
// out[n] = round(round(silu(gate[n])) * up[n]).
void swiglu_forward_launch(void* out, const void* gate, const void* up, int64_t n, DType dtype,
                           cudaStream_t stream);
// dup[n] = round(dout * round(silu(gate))), dgate[n] = round(dout * up * silu'(gate)), fp32.
void swiglu_backward_launch(void* dgate, void* dup, const void* dout, const void* gate, const void* up, int64_t n,
                            DType dtype, cudaStream_t stream);

}  // namespace nibble::cuda
