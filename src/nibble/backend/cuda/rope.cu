#include "nibble/backend/cuda/rope.cuh"

#include "nibble/backend/cuda/bad_index.h"
#include "nibble/backend/cuda/dependent_launch.cuh"
#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per (token, head, j < D/2) over the q heads then the k heads. transformers casts
// cos/sin to the activation dtype and computes q*cos + rotate_half(q)*sin in that dtype, so each
// product and the sum are rounded (round_as is the identity for float). sin_sign = -1 rotates
// by the negative angle (the backward); negating is exact, so the roundings stay autograd's.
template <typename T>
__global__ void rope_kernel(T* q, T* k, const int32_t* positions, const float* cos, const float* sin, int64_t T_,
                            int64_t H, int64_t KVH, int64_t D, int64_t P, float sin_sign, unsigned long long* bad_index) {
  allow_dependents();
  dependency_wait();
  const int64_t half = D / 2, heads = H + KVH, total = T_ * heads * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % half, head = (i / half) % heads, t = i / (half * heads);
    const int32_t pos = positions[t];
    if (pos < 0 || pos >= P) {
      atomicMin(bad_index, pack_bad_index(t, pos));
      continue;
    }
    T* row = head < H ? q + (t * H + head) * D : k + (t * KVH + (head - H)) * D;
    const float c = round_as<T>(cos[pos * half + j]);
    const float s = sin_sign * round_as<T>(sin[pos * half + j]);
    const float x1 = to_f32(row[j]), x2 = to_f32(row[j + half]);
    // __fmul_rn keeps nvcc from contracting a product and the sum into one FMA: torch rounds both.
    row[j] = from_f32<T>(round_as<T>(__fmul_rn(x1, c)) + round_as<T>(__fmul_rn(-x2, s)));
    row[j + half] = from_f32<T>(round_as<T>(__fmul_rn(x2, c)) + round_as<T>(__fmul_rn(x1, s)));
  }
}

}  // namespace

namespace {

void rope_launch(const char* op, float sin_sign, void* q, void* k, const int32_t* positions, const float* cos,
                 const float* sin, int64_t T, int64_t H, int64_t KVH, int64_t D, int64_t P, DType dtype,
                 unsigned long long* bad_index, cudaStream_t stream) {
  const int64_t total = T * (H + KVH) * (D / 2);
  if (total == 0) return;
  dispatch_activation(dtype, op, [&](auto tag) {
    using E = decltype(tag);
    launch_dependent(rope_kernel<E>, dim3(grid_for(total, kThreads)), dim3(kThreads), 0, stream, static_cast<E*>(q),
                     static_cast<E*>(k), positions, cos, sin, T, H, KVH, D, P, sin_sign, bad_index);
  });
}

}  // namespace

void rope_forward_launch(void* q, void* k, const int32_t* positions, const float* cos, const float* sin, int64_t T,
                         int64_t H, int64_t KVH, int64_t D, int64_t P, DType dtype, unsigned long long* bad_index,
                         cudaStream_t stream) {
  rope_launch("rope_forward", 1.0f, q, k, positions, cos, sin, T, H, KVH, D, P, dtype, bad_index, stream);
}

void rope_backward_launch(void* dq, void* dk, const int32_t* positions, const float* cos, const float* sin, int64_t T,
                          int64_t H, int64_t KVH, int64_t D, int64_t P, DType dtype, unsigned long long* bad_index,
                          cudaStream_t stream) {
  rope_launch("rope_backward", -1.0f, dq, dk, positions, cos, sin, T, H, KVH, D, P, dtype, bad_index, stream);
}

}  // namespace nibble::cuda
