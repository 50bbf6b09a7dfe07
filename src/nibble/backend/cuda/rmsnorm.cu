#include "nibble/backend/cuda/rmsnorm.cuh"

#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps; rows are C = 576..8192 long in this model family

template <typename T>
__global__ void rmsnorm_kernel(T* out, const T* x, const T* weight, float eps, int64_t C) {
  __shared__ float warp_sums[kThreads / 32];
  const T* row = x + blockIdx.x * C;
  T* out_row = out + blockIdx.x * C;
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(row[c]);
    sum += v * v;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  // IEEE sqrt and divide (nvcc's defaults), not rsqrtf's approximation: torch.rsqrt is within
  // an ulp, and so is this.
  const float rstd = 1.0f / sqrtf(total / static_cast<float>(C) + eps);
  for (int64_t c = threadIdx.x; c < C; c += kThreads)
    out_row[c] = from_f32<T>(round_as<T>(to_f32(row[c]) * rstd) * to_f32(weight[c]));
}

}  // namespace

void rmsnorm_forward_launch(void* out, const void* x, const void* weight, float eps, int64_t T, int64_t C,
                            DType dtype, cudaStream_t stream) {
  if (T == 0) return;
  dispatch_activation(dtype, "rmsnorm_forward", [&](auto tag) {
    using E = decltype(tag);
    rmsnorm_kernel<E><<<static_cast<unsigned int>(T), kThreads, 0, stream>>>(
        static_cast<E*>(out), static_cast<const E*>(x), static_cast<const E*>(weight), eps, C);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble::cuda
