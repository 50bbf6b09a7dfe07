// Launchers of the AdamW and gradient-norm kernels (adamw_cuda.cu, grad_clip_cuda.cu). Raw
// device pointers, sizes and a stream; validation is the caller's (optimizer.cpp, grad_clip.cpp).
// Built only with CUDA.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "nibble/optim/adamw_math.h"

namespace nibble {

// One parameter tensor of a fused update; every pointer is device-accessible (device or managed).
struct AdamwSlice {
  float* p;        // [n]
  const float* g;  // [n]
  float* m;        // [n]
  float* v;        // [n]
  int64_t n;
};

// A unit of work of the fused kernel: elements [start, start + kAdamwChunk) of slice `slice`.
struct AdamwChunk {
  int32_t slice;
  int64_t start;
};
constexpr int64_t kAdamwChunk = 8192;

// slices: [slice_count], chunks: [chunk_count], both in device memory.
void adamw_update_cuda(AdamwRule rule, const AdamwStepScalars& s, const AdamwSlice* slices,
                       const AdamwChunk* chunks, int64_t chunk_count, cudaStream_t stream);

// bitsandbytes' blockwise 8-bit update of one tensor (see adamw8bit_update_cpu).
void adamw8bit_update_cuda(const AdamwStepScalars& s, float* p, const float* g, uint8_t* m_codes, uint8_t* v_codes,
                           float* absmax1, float* absmax2, int64_t n, cudaStream_t stream);

// sum_i x[i]^2 in double, added into *accumulator (device memory).
void sum_squares_cuda(const float* x, int64_t n, double* accumulator, cudaStream_t stream);
// x[i] *= scale.
void scale_cuda(float* x, int64_t n, float scale, cudaStream_t stream);

}  // namespace nibble
