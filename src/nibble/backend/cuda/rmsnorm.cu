#include "nibble/backend/cuda/rmsnorm.cuh"

#include "nibble/backend/cuda/dependent_launch.cuh"
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

// Rows whose 16-byte vectors can be loaded whole: aligned, C a multiple of a vector. A decode step
// norms one 4096-element row a time, so what costs is latency: with a vector per load, each
// thread's loads of a row go out together (one element per load took 16 round trips in turn).
template <typename T>
__device__ __forceinline__ bool vector_row(const T* row, int64_t C) {
  return reinterpret_cast<uintptr_t>(row) % 16 == 0 && C % (16 / sizeof(T)) == 0;
}

// The 16-byte vector i of p: through the read-only cache, or (kReadOnly false) a plain load, for
// data this kernel itself wrote.
template <bool kReadOnly, typename T>
__device__ __forceinline__ uint4 load_vector(const T* p, int64_t i) {
  if constexpr (kReadOnly) return __ldg(reinterpret_cast<const uint4*>(p) + i);
  else return reinterpret_cast<const uint4*>(p)[i];
}

// One definition for the forward and a backward that recomputes it (and for the fused add +
// norm), so all agree bit for bit: thread j sums vectors (or elements) j, j + kThreads, ... in
// order, then the block sums the threads.
template <bool kReadOnly = true, typename T>
__device__ float row_rstd(const T* row, float eps, int64_t C, float* warp_sums) {
  constexpr int kVector = 16 / sizeof(T);
  float sum = 0.0f;
  if (vector_row(row, C)) {
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < C / kVector; i += kThreads) {
      const uint4 raw = load_vector<kReadOnly>(row, i);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int c = 0; c < kVector; ++c) {
        const float v = to_f32(e[c]);
        sum += v * v;
      }
    }
  } else {
    for (int64_t c = threadIdx.x; c < C; c += kThreads) {
      const float v = to_f32(row[c]);
      sum += v * v;
    }
  }
  // IEEE sqrt and divide (nvcc's defaults), not rsqrtf's approximation: torch.rsqrt is within
  // an ulp, and so is this.
  return 1.0f / sqrtf(block_sum(sum, warp_sums) / static_cast<float>(C) + eps);
}

// out_row = round(weight * round(row * rstd)), each thread on the vectors (or elements) row_rstd
// gave it.
template <bool kReadOnly, typename T>
__device__ void write_normed(T* out_row, const T* row, const T* weight, float rstd, int64_t C) {
  constexpr int kVector = 16 / sizeof(T);
  if (vector_row(row, C) && vector_row(out_row, C) && vector_row(weight, C)) {
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < C / kVector; i += kThreads) {
      const uint4 x_raw = load_vector<kReadOnly>(row, i);
      const uint4 w_raw = __ldg(reinterpret_cast<const uint4*>(weight) + i);
      const T* xe = reinterpret_cast<const T*>(&x_raw);
      const T* we = reinterpret_cast<const T*>(&w_raw);
      uint4 o_raw;
      T* oe = reinterpret_cast<T*>(&o_raw);
#pragma unroll
      for (int c = 0; c < kVector; ++c) oe[c] = from_f32<T>(round_as<T>(to_f32(xe[c]) * rstd) * to_f32(we[c]));
      reinterpret_cast<uint4*>(out_row)[i] = o_raw;
    }
    return;
  }
  for (int64_t c = threadIdx.x; c < C; c += kThreads)
    out_row[c] = from_f32<T>(round_as<T>(to_f32(row[c]) * rstd) * to_f32(weight[c]));
}

template <typename T>
__global__ void rmsnorm_kernel(T* out, float* rstd_out, const T* x, const T* weight, float eps, int64_t C) {
  __shared__ float warp_sums[kThreads / 32];
  allow_dependents();
  dependency_wait();
  const T* row = x + blockIdx.x * C;
  const float rstd = row_rstd(row, eps, C, warp_sums);
  if (rstd_out != nullptr && threadIdx.x == 0) rstd_out[blockIdx.x] = rstd;
  write_normed<true>(out + blockIdx.x * C, row, weight, rstd, C);
}

// x = round(x + delta), then out = rmsnorm(x): add_kernel's and rmsnorm_kernel's arithmetic, and
// each thread adds exactly the vectors (or elements) it then sums and norms, so it only reads
// back its own writes and the result is the two kernels' bit for bit.
template <typename T>
__global__ void add_rmsnorm_kernel(T* out, T* x, const T* delta, const T* weight, float eps, int64_t C) {
  __shared__ float warp_sums[kThreads / 32];
  allow_dependents();
  dependency_wait();
  T* row = x + blockIdx.x * C;
  const T* delta_row = delta + blockIdx.x * C;
  constexpr int kVector = 16 / sizeof(T);
  if (vector_row(row, C) && vector_row(delta_row, C)) {
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < C / kVector; i += kThreads) {
      const uint4 x_raw = load_vector<false>(row, i);
      const uint4 d_raw = __ldg(reinterpret_cast<const uint4*>(delta_row) + i);
      const T* xe = reinterpret_cast<const T*>(&x_raw);
      const T* de = reinterpret_cast<const T*>(&d_raw);
      uint4 s_raw;
      T* se = reinterpret_cast<T*>(&s_raw);
#pragma unroll
      for (int c = 0; c < kVector; ++c) se[c] = from_f32<T>(to_f32(xe[c]) + to_f32(de[c]));
      reinterpret_cast<uint4*>(row)[i] = s_raw;
    }
  } else if (vector_row(row, C)) {
    for (int64_t i = threadIdx.x; i < C / kVector; i += kThreads)
      for (int c = 0; c < kVector; ++c)
        row[i * kVector + c] = from_f32<T>(to_f32(row[i * kVector + c]) + to_f32(delta_row[i * kVector + c]));
  } else {
    for (int64_t c = threadIdx.x; c < C; c += kThreads) row[c] = from_f32<T>(to_f32(row[c]) + to_f32(delta_row[c]));
  }
  const float rstd = row_rstd<false>(row, eps, C, warp_sums);
  write_normed<false>(out + blockIdx.x * C, row, weight, rstd, C);
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
    launch_dependent(rmsnorm_kernel<E>, dim3(static_cast<unsigned int>(T)), dim3(kThreads), 0, stream,
                     static_cast<E*>(out), rstd, static_cast<const E*>(x), static_cast<const E*>(weight), eps, C);
  });
}

void add_rmsnorm_forward_launch(void* x, void* out, const void* delta, const void* weight, float eps, int64_t T,
                                int64_t C, DType dtype, cudaStream_t stream) {
  if (T == 0) return;
  dispatch_activation(dtype, "add_rmsnorm_forward", [&](auto tag) {
    using E = decltype(tag);
    launch_dependent(add_rmsnorm_kernel<E>, dim3(static_cast<unsigned int>(T)), dim3(kThreads), 0, stream,
                     static_cast<E*>(out), static_cast<E*>(x), static_cast<const E*>(delta),
                     static_cast<const E*>(weight), eps, C);
  });
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
