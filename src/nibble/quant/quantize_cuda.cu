// CUDA 4-bit quantization and Double Quantization, byte-equal to bitsandbytes' CUDA kernels
// (bnb-format.md 1.2-1.6, 2.1-2.3). The one non-IEEE step is the block reciprocal: bnb is built
// with --use_fast_math, so its 1.0f/absmax is rcp.approx.ftz.f32; we issue that instruction.
#include <cfloat>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "nibble/core/cuda_check.h"
#include "nibble/core/half.h"
#include "nibble/quant/formats.h"
#include "nibble/quant/quant_cuda.h"
#include "nibble/quant/sizes.h"

namespace nibble {
namespace {

__device__ __forceinline__ float approximate_reciprocal(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// Eight consecutive inputs as floats; elements at or past n read as 0.0 (bnb's padding).
template <typename T>
__device__ __forceinline__ void load8(const T* x, int64_t i, int64_t n, bool vector_ok, float (&v)[8]);

template <>
__device__ __forceinline__ void load8<float>(const float* x, int64_t i, int64_t n, bool vector_ok, float (&v)[8]) {
  if (vector_ok && i + 8 <= n) {
    float4 a = *reinterpret_cast<const float4*>(x + i);
    float4 b = *reinterpret_cast<const float4*>(x + i + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] = i + e < n ? x[i + e] : 0.0f;
}

template <typename H, float (*convert)(H)>
__device__ __forceinline__ void load8_half(const H* x, int64_t i, int64_t n, bool vector_ok, float (&v)[8]) {
  if (vector_ok && i + 8 <= n) {
    uint4 raw = *reinterpret_cast<const uint4*>(x + i);
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      v[2 * w] = convert(H{static_cast<uint16_t>(words[w] & 0xffffu)});
      v[2 * w + 1] = convert(H{static_cast<uint16_t>(words[w] >> 16)});
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] = i + e < n ? convert(x[i + e]) : 0.0f;
}

__device__ __forceinline__ float bf16_bits_to_float(bf16_t h) { return bf16_to_float(h); }
__device__ __forceinline__ float fp16_bits_to_float(fp16_t h) { return __half2float(__ushort_as_half(h.bits)); }

template <>
__device__ __forceinline__ void load8<bf16_t>(const bf16_t* x, int64_t i, int64_t n, bool vector_ok, float (&v)[8]) {
  load8_half<bf16_t, bf16_bits_to_float>(x, i, n, vector_ok, v);
}
template <>
__device__ __forceinline__ void load8<fp16_t>(const fp16_t* x, int64_t i, int64_t n, bool vector_ok, float (&v)[8]) {
  load8_half<fp16_t, fp16_bits_to_float>(x, i, n, vector_ok, v);
}

// A group of `group` lanes (a power of two <= 32, = min(32, B/8)) owns one block; each lane
// takes 8 consecutive elements per step. Pass 1 finds absmax, pass 2 re-reads (L1/L2 hits) and
// writes 4 packed bytes per lane per step.
template <typename T, bool kNf4>
__global__ void quantize_4bit_kernel(const T* __restrict__ x, int64_t n, int64_t blocksize, int group,
                                     bool vector_ok, uint8_t* __restrict__ packed, float* __restrict__ absmax) {
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t block = thread / group;
  const int lane = static_cast<int>(thread % group);
  const int64_t blocks = quant_blocks(n, blocksize);
  // Out-of-range groups still run the loop so every lane takes part in the shuffles.
  const bool active = block < blocks;
  const int64_t begin = block * blocksize;
  const int64_t step = static_cast<int64_t>(group) * 8;

  float m = -FLT_MAX;  // bnb's start value; fmaxf drops NaN
  for (int64_t i = begin + lane * 8; i < begin + blocksize; i += step) {
    float v[8];
    if (active) {
      load8<T>(x, i, n, vector_ok, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(v[e]));
    }
  }
  for (int offset = group / 2; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  if (!active) return;
  if (lane == 0) absmax[block] = m;
  const float reciprocal = approximate_reciprocal(m);
  const int64_t bytes = quant_packed_bytes(n);
  // A step whose first byte exists: covers the padding nibble of an odd n.
  for (int64_t i = begin + lane * 8; i < begin + blocksize && i / 2 < bytes; i += step) {
    float v[8];
    load8<T>(x, i, n, vector_ok, v);
    uint32_t word = 0;
#pragma unroll
    for (int e = 0; e < 8; e += 2) {
      float s0 = v[e] * reciprocal;
      float s1 = v[e + 1] * reciprocal;
      uint32_t c0 = kNf4 ? nf4_quantize_scaled(s0) : fp4_quantize_scaled(s0);
      uint32_t c1 = kNf4 ? nf4_quantize_scaled(s1) : fp4_quantize_scaled(s1);
      word |= static_cast<uint32_t>(pack_nibbles(c0, c1)) << (4 * e);  // byte e/2, little-endian
    }
    const int64_t byte = i / 2;
    if (byte + 4 <= bytes) {
      *reinterpret_cast<uint32_t*>(packed + byte) = word;
    } else {
      for (int64_t j = 0; byte + j < bytes; ++j) packed[byte + j] = static_cast<uint8_t>(word >> (8 * j));
    }
  }
}

template <typename T>
void launch_quantize(const T* x, int64_t n, int64_t blocksize, QuantType type, uint8_t* packed, float* absmax,
                     cudaStream_t stream) {
  const int group = blocksize / 8 < 32 ? static_cast<int>(blocksize / 8) : 32;
  const int64_t threads = quant_blocks(n, blocksize) * group;
  const int per_block = 256;
  const int64_t grid = (threads + per_block - 1) / per_block;
  // 16-byte loads need 16-byte aligned data; packed words need 4-byte alignment (cudaMalloc gives 256).
  const bool vector_ok = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  NIBBLE_CHECK(reinterpret_cast<uintptr_t>(packed) % 4 == 0, "quantize_4bit: packed output is not 4-byte aligned");
  if (type == QuantType::nf4) {
    quantize_4bit_kernel<T, true><<<static_cast<unsigned>(grid), per_block, 0, stream>>>(x, n, blocksize, group, vector_ok, packed, absmax);
  } else {
    quantize_4bit_kernel<T, false><<<static_cast<unsigned>(grid), per_block, 0, stream>>>(x, n, blocksize, group, vector_ok, packed, absmax);
  }
  NIBBLE_CUDA_CHECK_LAUNCH();
}

// One thread block of 256 per nested block: c = absmax - offset, max |c|, rcp.approx, binary search.
__global__ void double_quantize_kernel(const float* __restrict__ absmax, int64_t nb, const float* __restrict__ map,
                                       const float* __restrict__ offset_ptr, uint8_t* __restrict__ codes,
                                       float* __restrict__ nested_absmax) {
  const float offset = *offset_ptr;
  __shared__ float map_shared[kDynamicMapSize];
  __shared__ float warp_max[kDoubleQuantBlocksize / 32];
  map_shared[threadIdx.x] = map[threadIdx.x];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kDoubleQuantBlocksize + threadIdx.x;
  const bool valid = i < nb;
  // Out-of-range entries of a partial block are bnb's 0.0 padding and take part in the max.
  const float c = valid ? absmax[i] - offset : 0.0f;
  float m = fmaxf(-FLT_MAX, fabsf(c));
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  m = warp_max[0];
  for (int w = 1; w < kDoubleQuantBlocksize / 32; ++w) m = fmaxf(m, warp_max[w]);
  if (threadIdx.x == 0) nested_absmax[blockIdx.x] = m;
  if (valid) codes[i] = static_cast<uint8_t>(quantize_8bit_search(map_shared, c * approximate_reciprocal(m)));
}

}  // namespace

void quantize_4bit_cuda(const void* x, DType dtype, int64_t n, int64_t blocksize, QuantType type, uint8_t* packed,
                        float* absmax, cudaStream_t stream) {
  if (n == 0) return;
  switch (dtype) {
    case DType::f32:
      launch_quantize(static_cast<const float*>(x), n, blocksize, type, packed, absmax, stream);
      break;
    case DType::bf16:
      launch_quantize(static_cast<const bf16_t*>(x), n, blocksize, type, packed, absmax, stream);
      break;
    case DType::f16:
      launch_quantize(static_cast<const fp16_t*>(x), n, blocksize, type, packed, absmax, stream);
      break;
    default:
      fail("quantize_4bit: input dtype {} is not supported; expected F32, F16 or BF16", dtype_safetensors_name(dtype));
  }
}

void double_quantize_cuda(const float* absmax, int64_t nb, const float* map, const float* offset, uint8_t* codes,
                          float* nested_absmax, cudaStream_t stream) {
  if (nb == 0) return;
  const int64_t grid = quant_blocks(nb, kDoubleQuantBlocksize);
  double_quantize_kernel<<<static_cast<unsigned>(grid), kDoubleQuantBlocksize, 0, stream>>>(absmax, nb, map, offset, codes, nested_absmax);
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble
