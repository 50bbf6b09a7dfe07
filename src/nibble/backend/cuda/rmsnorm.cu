#include "nibble/backend/cuda/rmsnorm.cuh"

#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps; rows are C = 576..8192 long in this model family

// Every thread of the block gets the sum of its threads' x; `warp_sums` holds kThreads / 32 floats.
__device__ float block_sum(float x, float* warp_sums) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  __syncthreads();  // warp_sums may still be read by an earlier reduction
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = x;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  return total;
}

// One definition for the forward and a backward that recomputes it, so both agree bit for bit.
template <typename T>
__device__ float row_rstd(const T* row, float eps, int64_t C, float* warp_sums) {
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(row[c]);
    sum += v * v;
  }
  // IEEE sqrt and divide (nvcc's defaults), not rsqrtf's approximation: torch.rsqrt is within
  // an ulp, and so is this.
  return 1.0f / sqrtf(block_sum(sum, warp_sums) / static_cast<float>(C) + eps);
}

template <typename T>
__global__ void rmsnorm_kernel(T* out, float* rstd_out, const T* x, const T* weight, float eps, int64_t C) {
  __shared__ float warp_sums[kThreads / 32];
  const T* row = x + blockIdx.x * C;
  T* out_row = out + blockIdx.x * C;
  const float rstd = row_rstd(row, eps, C, warp_sums);
  if (rstd_out != nullptr && threadIdx.x == 0) rstd_out[blockIdx.x] = rstd;
  for (int64_t c = threadIdx.x; c < C; c += kThreads)
    out_row[c] = from_f32<T>(round_as<T>(to_f32(row[c]) * rstd) * to_f32(weight[c]));
}

template <typename T>
__global__ void rmsnorm_backward_kernel(T* dx, const T* dy, const T* x, const T* weight, const float* rstd_in,
                                        float eps, int64_t C) {
  __shared__ float warp_sums[kThreads / 32];
  const int64_t offset = blockIdx.x * C;
  const float rstd = rstd_in != nullptr ? rstd_in[blockIdx.x] : row_rstd(x + offset, eps, C, warp_sums);
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += kThreads)
    sum += to_f32(dy[offset + c]) * to_f32(weight[c]) * to_f32(x[offset + c]);
  const float mean_gx = block_sum(sum, warp_sums) / static_cast<float>(C);
  const float r3 = rstd * rstd * rstd;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    const float g = to_f32(dy[offset + c]) * to_f32(weight[c]);
    dx[offset + c] = from_f32<T>(rstd * g - r3 * to_f32(x[offset + c]) * mean_gx);
  }
}

}  // namespace

void rmsnorm_forward_launch(void* out, float* rstd, const void* x, const void* weight, float eps, int64_t T,
                            int64_t C, DType dtype, cudaStream_t stream) {
  if (T == 0) return;
  dispatch_activation(dtype, "rmsnorm_forward", [&](auto tag) {
    using E = decltype(tag);
    rmsnorm_kernel<E><<<static_cast<unsigned int>(T), kThreads, 0, stream>>>(
        static_cast<E*>(out), rstd, static_cast<const E*>(x), static_cast<const E*>(weight), eps, C);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward_launch(void* dx, const void* dy, const void* x, const void* weight, const float* rstd,
                             float eps, int64_t T, int64_t C, DType dtype, cudaStream_t stream) {
  if (T == 0) return;
  dispatch_activation(dtype, "rmsnorm_backward", [&](auto tag) {
    using E = decltype(tag);
    rmsnorm_backward_kernel<E><<<static_cast<unsigned int>(T), kThreads, 0, stream>>>(
        static_cast<E*>(dx), static_cast<const E*>(dy), static_cast<const E*>(x), static_cast<const E*>(weight), rstd,
        eps, C);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble::cuda
