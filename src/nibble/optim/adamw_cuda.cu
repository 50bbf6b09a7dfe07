// AdamW kernels. The arithmetic is adamw_math.h's, shared with the CPU reference, so both paths
// agree bit for bit; the host computes the per-step scalars.
#include "nibble/optim/adamw_cuda.h"

#include "nibble/core/cuda_check.h"
#include "nibble/optim/adamw_cpu.h"
#include "nibble/optim/dynamic_map.h"
#include "nibble/quant/formats.h"

namespace nibble {

namespace {

constexpr int kThreads = 256;

// One block per chunk of one tensor: the chunk table turns a list of tensors of any sizes into a
// single launch (a LoRA model has hundreds of small tensors).
__global__ void adamw_kernel(AdamwRule rule, AdamwStepScalars s, const AdamwSlice* slices,
                             const AdamwChunk* chunks) {
  const AdamwChunk chunk = chunks[blockIdx.x];
  const AdamwSlice slice = slices[chunk.slice];
  const int64_t end = min(chunk.start + kAdamwChunk, slice.n);
  for (int64_t i = chunk.start + threadIdx.x; i < end; i += blockDim.x) {
    float p = slice.p[i], m = slice.m[i], v = slice.v[i];
    const float g = slice.g[i];
    if (rule == AdamwRule::torch)
      adamw_torch_element(s, p, g, m, v);
    else
      adamw_bnb_element(s, p, g, m, v);
    slice.p[i] = p;
    slice.m[i] = m;
    slice.v[i] = v;
  }
}

// One block of 256 threads per quantization block of 256 states.
__global__ void adamw8bit_kernel(AdamwStepScalars s, float* p, const float* g, uint8_t* m_codes, uint8_t* v_codes,
                                 float* absmax1, float* absmax2, int64_t n) {
  static_assert(kThreads == kOptim8bitBlocksize, "one thread per state of a block");
  __shared__ float map1[256];
  __shared__ float map2[256];
  __shared__ float max1[kThreads];
  __shared__ float max2[kThreads];
  const int t = threadIdx.x;
  map1[t] = bits_float(signed_dynamic_map_bits(t));
  map2[t] = bits_float(unsigned_dynamic_map_bits(t));
  __syncthreads();

  const int64_t block = blockIdx.x;
  const int64_t i = block * kOptim8bitBlocksize + t;
  const bool active = i < n;
  float m = 0.0f, v = 0.0f;
  if (active) {
    m = __fmul_rn(map1[m_codes[i]], absmax1[block]);
    v = __fmul_rn(map2[v_codes[i]], absmax2[block]);
    const float gi = g[i];
    if (isfinite(gi)) {
      float pi = p[i];
      adamw_bnb_states(s, gi, m, v);
      adamw_bnb_param(s, pi, m, v);
      p[i] = pi;
    } else {
      m = 0.0f;
      v = 0.0f;
    }
  }
  // max is exact, so the tree order gives the CPU loop's result.
  max1[t] = fabsf(m);
  max2[t] = fabsf(v);
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (t < half) {
      max1[t] = fmaxf(max1[t], max1[t + half]);
      max2[t] = fmaxf(max2[t], max2[t + half]);
    }
    __syncthreads();
  }
  const float new_absmax1 = max1[0];
  const float new_absmax2 = max2[0];
  if (t == 0) {
    absmax1[block] = new_absmax1;
    absmax2[block] = new_absmax2;
  }
  if (!active) return;
  uint32_t c1 = quantize_8bit_search(map1, optim_scaled(m, new_absmax1));
  if ((__float_as_uint(map1[c1]) >> 31) != (__float_as_uint(m) >> 31)) c1 = m > 0.0f ? c1 + 1 : c1 - 1;
  m_codes[i] = static_cast<uint8_t>(c1);
  v_codes[i] = static_cast<uint8_t>(quantize_8bit_search(map2, optim_scaled(v, new_absmax2)));
}

__global__ void sum_squares_kernel(const float* x, int64_t n, double* accumulator) {
  __shared__ double partial[kThreads];
  double sum = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double value = x[i];
    sum += value * value;
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(accumulator, partial[0]);
}

__global__ void scale_kernel(float* x, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = __fmul_rn(x[i], scale);
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1024 ? (blocks > 0 ? blocks : 1) : 1024);
}

}  // namespace

void adamw_update_cuda(AdamwRule rule, const AdamwStepScalars& s, const AdamwSlice* slices,
                       const AdamwChunk* chunks, int64_t chunk_count, cudaStream_t stream) {
  if (chunk_count == 0) return;
  adamw_kernel<<<static_cast<unsigned>(chunk_count), kThreads, 0, stream>>>(rule, s, slices, chunks);
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void adamw8bit_update_cuda(const AdamwStepScalars& s, float* p, const float* g, uint8_t* m_codes, uint8_t* v_codes,
                           float* absmax1, float* absmax2, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t blocks = (n + kOptim8bitBlocksize - 1) / kOptim8bitBlocksize;
  adamw8bit_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(s, p, g, m_codes, v_codes, absmax1,
                                                                           absmax2, n);
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void sum_squares_cuda(const float* x, int64_t n, double* accumulator, cudaStream_t stream) {
  if (n == 0) return;
  sum_squares_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, n, accumulator);
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void scale_cuda(float* x, int64_t n, float scale, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, n, scale);
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble
