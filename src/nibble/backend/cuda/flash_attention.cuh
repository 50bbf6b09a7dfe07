// Training-shaped attention on the tensor cores (flash-attention-2's tiling): 64 x 64 tiles of
// queries and keys, bf16 products with fp32 accumulation (WMMA), an online softmax in fp32, and
// tiles above the causal diagonal or outside a query's sequence skipped. The probabilities and
// dS enter their products as two bf16 terms (hi + lo, ~16 significant bits), so the results keep
// the accuracy of the fp32 kernels in attention.cu, which still serve F32, F16 (whose narrow
// exponent would flush small dS) and head dims over kFlashMaxHeadDim.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "nibble/core/dtype.h"

namespace nibble::cuda {

constexpr int64_t kFlashMaxHeadDim = 128;

// Whether the flash kernels take this dtype and head dim.
bool flash_attention_applies(DType dtype, int64_t D);

// As attention_forward_launch (attention.cuh) for BF16: out[T, H, D], lse F32 [H, T] (may be
// null); query t sees keys [0, S - T + t], or with seq_ids (then S == T) those of its own run.
void flash_attention_forward_launch(void* out, float* lse, const void* q, const void* k, const void* v,
                                    const int32_t* seq_ids, int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D,
                                    cudaStream_t stream);

// As attention_backward_launch (attention.cuh) for BF16; delta F32 [H, T] is scratch.
void flash_attention_backward_launch(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q,
                                     const void* k, const void* v, const void* out, const float* lse,
                                     const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D,
                                     cudaStream_t stream);

}  // namespace nibble::cuda
