#include "nibble/backend/cuda/linear.cuh"

#include <climits>

#include "nibble/core/cuda_check.h"
#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void broadcast_rows_kernel(T* y, const T* bias, int64_t T_, int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < T_ * N; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = bias[i % N];
}

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    default: fail("linear_forward on cuda: dtype {} is not F32, F16 or BF16", dtype_safetensors_name(dtype));
  }
}

}  // namespace

void linear_forward_launch(cublasHandle_t handle, void* y, const void* x, const void* w, const void* bias, int64_t T,
                           int64_t K, int64_t N, DType dtype, cudaStream_t stream) {
  NIBBLE_CHECK(T <= INT_MAX && K <= INT_MAX && N <= INT_MAX,
               "linear_forward on cuda: T = {}, K = {}, N = {}; cuBLAS takes dimensions up to {}", T, K, N, INT_MAX);
  if (T == 0 || N == 0) return;
  // With a bias, y starts as the bias broadcast over rows and the GEMM adds to it (beta = 1):
  // cuBLAS forms alpha * acc + beta * y in fp32 and rounds once, as addmm does.
  float beta = 0.0f;
  if (bias != nullptr) {
    dispatch_activation(dtype, "linear_forward", [&](auto tag) {
      using E = decltype(tag);
      broadcast_rows_kernel<E><<<grid_for(T * N, kThreads), kThreads, 0, stream>>>(
          static_cast<E*>(y), static_cast<const E*>(bias), T, N);
    });
    NIBBLE_CUDA_CHECK_LAUNCH();
    beta = 1.0f;
  } else if (K == 0) {
    NIBBLE_CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(T * N) * dtype_size(dtype), stream));
    return;
  }
  if (K == 0) return;
  // Column-major view: y^T[N, T] = w[N, K] (stored as K x N, transposed) times x^T[K, T].
  const float alpha = 1.0f;
  const cudaDataType_t type = cuda_type(dtype);
  NIBBLE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(T),
                                   static_cast<int>(K), &alpha, w, type, static_cast<int>(K), x, type,
                                   static_cast<int>(K), &beta, y, type, static_cast<int>(N), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
}

}  // namespace nibble::cuda
