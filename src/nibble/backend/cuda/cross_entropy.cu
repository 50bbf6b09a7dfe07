#include "nibble/backend/cuda/cross_entropy.cuh"

#include "nibble/backend/cuda/bad_index.h"
#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int32_t kIgnoreIndex = -100;  // torch's ignore_index default

// Merges two online-softmax states (max m, sum l of exp(x - m)); an empty state has m = -inf.
__device__ void merge(float& m, float& l, float m_other, float l_other) {
  const float m_new = fmaxf(m, m_other);
  if (m_new == -INFINITY) return;  // both empty
  l = l * expf(m - m_new) + l_other * expf(m_other - m_new);
  m = m_new;
}

// One block per row: each thread folds its strided elements into (m, l), the block merges the
// states, then every element's gradient is written by the thread that read it, so dlogits may
// alias logits. The target logit is read before the first barrier, ahead of any write.
template <typename G, typename L>
__global__ void cross_entropy_kernel(float* losses, G* dlogits, const L* logits, const int32_t* labels, int64_t V,
                                     float grad_scale, unsigned long long* bad_index) {
  __shared__ float warp_m[kWarps], warp_l[kWarps];
  const int64_t t = blockIdx.x;
  const L* row = logits + t * V;
  G* grad_row = dlogits != nullptr ? dlogits + t * V : nullptr;
  const int32_t label = labels[t];
  if (label == kIgnoreIndex || label < 0 || label >= V) {
    if (threadIdx.x == 0) {
      losses[t] = 0.0f;
      if (label != kIgnoreIndex) atomicMin(bad_index, pack_bad_index(t, label));
    }
    if (grad_row != nullptr)
      for (int64_t j = threadIdx.x; j < V; j += kThreads) grad_row[j] = from_f32<G>(0.0f);
    return;
  }
  const float target = to_f32(row[label]);
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) merge(m, l, to_f32(row[j]), 1.0f);
  for (int offset = 16; offset > 0; offset /= 2)
    merge(m, l, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, l, offset));
  if (threadIdx.x % 32 == 0) {
    warp_m[threadIdx.x / 32] = m;
    warp_l[threadIdx.x / 32] = l;
  }
  __syncthreads();
  m = warp_m[0];
  l = warp_l[0];
  for (int w = 1; w < kWarps; ++w) merge(m, l, warp_m[w], warp_l[w]);
  const float lse = m + logf(l);
  if (threadIdx.x == 0) losses[t] = lse - target;
  if (grad_row == nullptr) return;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) {
    const float p = expf(to_f32(row[j]) - lse);
    grad_row[j] = from_f32<G>((p - (j == label ? 1.0f : 0.0f)) * grad_scale);
  }
}

}  // namespace

void cross_entropy_launch(float* losses, void* dlogits, DType dlogits_dtype, const void* logits, DType logits_dtype,
                          const int32_t* labels, int64_t T, int64_t V, float grad_scale,
                          unsigned long long* bad_index, cudaStream_t stream) {
  NIBBLE_CHECK(T <= 0x7fffffff, "cross_entropy on cuda: T = {} rows exceed the grid", T);
  if (T == 0) return;
  dispatch_activation(dlogits_dtype, "cross_entropy", [&](auto grad_tag) {
    dispatch_activation(logits_dtype, "cross_entropy", [&](auto logits_tag) {
      using G = decltype(grad_tag);
      using L = decltype(logits_tag);
      cross_entropy_kernel<G, L><<<static_cast<unsigned int>(T), kThreads, 0, stream>>>(
          losses, static_cast<G*>(dlogits), static_cast<const L*>(logits), labels, V, grad_scale, bad_index);
    });
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble::cuda
