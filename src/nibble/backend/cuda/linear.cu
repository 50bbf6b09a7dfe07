#include "nibble/backend/cuda/linear.cuh"

#include <climits>

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

void linear_backward_launch(cublasHandle_t handle, void* dx, const void* dy, const void* w, int64_t T, int64_t K,
                            int64_t N, DType dtype, cudaStream_t stream) {
  NIBBLE_CHECK(T <= INT_MAX && K <= INT_MAX && N <= INT_MAX,
               "linear_backward on cuda: T = {}, K = {}, N = {}; cuBLAS takes dimensions up to {}", T, K, N, INT_MAX);
  if (T == 0 || K == 0) return;
  if (N == 0) {
    NIBBLE_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<size_t>(T * K) * dtype_size(dtype), stream));
    return;
  }
  // Column-major view: dx^T[K, T] = w^T[K, N] (w stored as K x N) times dy^T[N, T].
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType_t type = cuda_type(dtype);
  NIBBLE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(K), static_cast<int>(T),
                                   static_cast<int>(N), &alpha, w, type, static_cast<int>(K), dy, type,
                                   static_cast<int>(N), &beta, dx, type, static_cast<int>(K), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
}

bool gemm_dtypes_supported(DType out, DType a, DType b) { return a == b && (out == a || out == DType::f32); }

void gemm_launch(cublasHandle_t handle, void* out, DType out_dtype, const void* a, bool trans_a, const void* b,
                 bool trans_b, DType ab_dtype, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                 cudaStream_t stream) {
  NIBBLE_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX,
               "gemm on cuda: M = {}, N = {}, K = {}; cuBLAS takes dimensions up to {}", M, N, K, INT_MAX);
  NIBBLE_CHECK(gemm_dtypes_supported(out_dtype, ab_dtype, ab_dtype), "gemm on cuda: inputs {} and out {}",
               dtype_safetensors_name(ab_dtype), dtype_safetensors_name(out_dtype));
  if (M == 0 || N == 0) return;
  if (K == 0 && beta == 0.0f) {
    NIBBLE_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(M * N) * dtype_size(out_dtype), stream));
    return;
  }
  // Row-major out[M, N] is column-major out^T[N, M] = op(b)^T @ op(a)^T: b and a swap places and
  // keep their transposes; a row-major [R, C] matrix is a column-major C x R one with ld C.
  NIBBLE_CUBLAS_CHECK(cublasGemmEx(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, b,
                                   cuda_type(ab_dtype), static_cast<int>(trans_b ? K : N), a, cuda_type(ab_dtype),
                                   static_cast<int>(trans_a ? M : K), &beta, out, cuda_type(out_dtype),
                                   static_cast<int>(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace nibble::cuda
