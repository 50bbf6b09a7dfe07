#include "nibble/backend/cuda/attention.cuh"

#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 128;  // also the keys scored per step
constexpr int kWarps = kThreads / 32;
constexpr int kOutputsPerThread = kAttentionMaxHeadDim / kThreads;

// All threads of the block take part; `scratch` holds one float per warp.
__device__ float block_max(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  __syncthreads();  // scratch may still be read from the previous reduction
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float result = scratch[0];
  for (int w = 1; w < kWarps; ++w) result = fmaxf(result, scratch[w]);
  return result;
}

__device__ float block_sum(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float result = 0.0f;
  for (int w = 0; w < kWarps; ++w) result += scratch[w];
  return result;
}

// Block (t, h). Per step of kThreads keys: thread j scores key s0 + j, the block updates the
// running max m and sum l (online softmax: earlier terms rescaled by exp(m_old - m_new)), and
// thread i accumulates output dims i, i + kThreads, ... over the step's keys.
template <typename T>
__global__ void attention_kernel(T* out, const T* q, const T* k, const T* v, int64_t T_, int64_t S, int64_t H,
                                 int64_t KVH, int64_t D, float scale) {
  __shared__ float q_row[kAttentionMaxHeadDim];
  __shared__ float p[kThreads];
  __shared__ float scratch[kWarps];
  const int64_t t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KVH);
  const int64_t visible = S - T_ + t + 1;
  for (int64_t i = threadIdx.x; i < D; i += kThreads) q_row[i] = to_f32(q[(t * H + h) * D + i]);
  __syncthreads();

  float acc[kOutputsPerThread];
  for (int r = 0; r < kOutputsPerThread; ++r) acc[r] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int64_t s0 = 0; s0 < visible; s0 += kThreads) {
    const int64_t s = s0 + threadIdx.x;
    float score = -INFINITY;
    if (s < visible) {
      const T* key = k + (s * KVH + kvh) * D;
      float dot = 0.0f;
      for (int64_t i = 0; i < D; ++i) dot += q_row[i] * to_f32(key[i]);
      score = dot * scale;
    }
    const float m_new = fmaxf(m, block_max(score, scratch));  // finite: key s0 is visible
    const float e = s < visible ? expf(score - m_new) : 0.0f;
    const float rescale = expf(m - m_new);  // 0 on the first step (m = -inf)
    l = l * rescale + block_sum(e, scratch);
    p[threadIdx.x] = e;
    __syncthreads();
    const int64_t count = visible - s0 < kThreads ? visible - s0 : kThreads;
    for (int r = 0; r < kOutputsPerThread; ++r) {
      const int64_t i = threadIdx.x + r * kThreads;
      if (i >= D) break;
      float sum = acc[r] * rescale;
      for (int64_t j = 0; j < count; ++j) sum += p[j] * to_f32(v[((s0 + j) * KVH + kvh) * D + i]);
      acc[r] = sum;
    }
    m = m_new;
    __syncthreads();  // p is rewritten next step
  }
  for (int r = 0; r < kOutputsPerThread; ++r) {
    const int64_t i = threadIdx.x + r * kThreads;
    if (i < D) out[(t * H + h) * D + i] = from_f32<T>(acc[r] / l);
  }
}

}  // namespace

void attention_forward_launch(void* out, const void* q, const void* k, const void* v, int64_t T, int64_t S,
                              int64_t H, int64_t KVH, int64_t D, DType dtype, cudaStream_t stream) {
  NIBBLE_CHECK(D <= kAttentionMaxHeadDim, "attention_forward on cuda: head dim {} is over the supported {}", D,
               kAttentionMaxHeadDim);
  NIBBLE_CHECK(T <= 0x7fffffff && H <= 65535, "attention_forward on cuda: T = {} and H = {} exceed the grid", T, H);
  if (T == 0 || H == 0 || D == 0) return;
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const dim3 grid(static_cast<unsigned int>(T), static_cast<unsigned int>(H));
  dispatch_activation(dtype, "attention_forward", [&](auto tag) {
    using E = decltype(tag);
    attention_kernel<E><<<grid, kThreads, 0, stream>>>(static_cast<E*>(out), static_cast<const E*>(q),
                                                       static_cast<const E*>(k), static_cast<const E*>(v), T, S, H,
                                                       KVH, D, scale);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble::cuda
