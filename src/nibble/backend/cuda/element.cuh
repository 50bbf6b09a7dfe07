// Element access for the kernels: activations are stored as float, bf16_t or fp16_t and always
// computed in float. Kernels are templates over the storage type only (three instantiations),
// chosen at run time by dispatch_activation.
#pragma once

#include <cstdint>

#include "nibble/core/dtype.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble::cuda {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16_t x) { return bf16_to_float(x); }
__device__ __forceinline__ float to_f32(fp16_t x) { return fp16_to_float(x); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16_t from_f32<bf16_t>(float x) { return float_to_bf16(x); }
template <>
__device__ __forceinline__ fp16_t from_f32<fp16_t>(float x) { return float_to_fp16(x); }

// The float a tensor of element type T holds after storing x: HF's intermediate roundings.
template <typename T>
__device__ __forceinline__ float round_as(float x) { return to_f32(from_f32<T>(x)); }

// Calls f(T{}) with T the storage type of an activation dtype.
template <typename F>
void dispatch_activation(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::f32: f(float{}); break;
    case DType::bf16: f(bf16_t{}); break;
    case DType::f16: f(fp16_t{}); break;
    default: fail("{} on cuda: dtype {} is not F32, F16 or BF16", op, dtype_safetensors_name(dtype));
  }
}

// Blocks for a grid-stride loop over n elements with `threads` per block.
inline unsigned int grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 65536 ? blocks : 65536);
}

}  // namespace nibble::cuda
