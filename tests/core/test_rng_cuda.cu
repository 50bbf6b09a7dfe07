// The Philox stream on the GPU is the CPU's: the same integers and uniforms bit for bit, and
// normals within the accuracy CUDA documents for logf/sinf/cosf.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "nibble/core/rng.h"

using namespace nibble;

namespace {

__global__ void rng_draw_kernel(uint64_t seed, uint64_t stream, uint64_t first, int64_t n,
                                uint32_t* bits, float* uniform, float* normal) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i >= n) return;
  bits[i] = philox_uint32_at(seed, stream, first + i);
  uniform[i] = philox_uniform_at(seed, stream, first + i);
  normal[i] = philox_normal_at(seed, stream, first + i);
}

template <typename T>
std::vector<T> copy_back(const T* device, int64_t n) {
  std::vector<T> host(n);
  EXPECT_EQ(cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

}  // namespace

TEST(RngCuda, SameStreamAsHost) {
  const int64_t n = 1 << 16;
  const uint64_t seed = 0x1234567890abcdefull, stream = 5, first = (uint64_t{1} << 33) + 3;
  uint32_t* bits = nullptr;
  float* uniform = nullptr;
  float* normal = nullptr;
  ASSERT_EQ(cudaMalloc(&bits, n * sizeof(uint32_t)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&uniform, n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&normal, n * sizeof(float)), cudaSuccess);
  rng_draw_kernel<<<static_cast<unsigned>((n + 255) / 256), 256>>>(seed, stream, first, n, bits, uniform, normal);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<uint32_t> got_bits = copy_back(bits, n);
  const std::vector<float> got_uniform = copy_back(uniform, n);
  const std::vector<float> got_normal = copy_back(normal, n);
  cudaFree(bits);
  cudaFree(uniform);
  cudaFree(normal);

  Rng rng(seed, stream, first);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(got_bits[i], philox_uint32_at(seed, stream, first + i)) << i;
    ASSERT_EQ(got_uniform[i], philox_uniform_at(seed, stream, first + i)) << i;
    // Relative bound: the host's libm and CUDA's logf (1 ulp) and sinf/cosf (2 ulp) each err by a
    // few ulps, sqrt halves the log's error, and each side rounds its own products: 8 ulps covers
    // the sum of both sides' documented errors.
    const float want = rng.next_normal();
    ASSERT_LE(std::fabs(got_normal[i] - want), 8.0f * FLT_EPSILON * std::fmax(std::fabs(want), FLT_MIN)) << i;
  }
}
