// torch.mean of a contiguous float32[n] on the device, the same float32 as the host emulation
// torch_cuda_mean_f32 (torch_mean.cpp, which explains where each step comes from in ATen's
// Reduce.cuh). This file replays that emulation stage by stage; each device function names the
// emulation function it mirrors. Every add is __fadd_rn and the final product __fmul_rn: nvcc may
// neither contract them into FMAs nor reassociate, so each step is the one IEEE float32 rounding
// that ATen's MeanOps performs.
//
// One difference of form, none of value: ATen combines its CTAs in the last CTA to finish (a
// semaphore in global memory); here a second launch of one CTA does it. The staged sums, the
// order in which each thread gathers them and the block tree over them are the same.
#include <cstdint>
#include <limits>

#include "nibble/core/cuda_check.h"
#include "nibble/quant/quant_cuda.h"

namespace nibble {
namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 512;       // mnt_wrapper<float>::MAX_NUM_THREADS
constexpr int kVec = 4;                // vt0 and input_vec_size for float
constexpr int64_t kVectorizeMin = 128; // dim0 >= 128 turns on input vectorization
constexpr int64_t kMinValuesPerThread = 16;
constexpr int64_t kMaxValuesPerThread = 256;

// torch_mean.cpp: LaunchShape and launch_shape, the same rules (setReduceConfig). The GPU test
// compares every size class against the emulation, so a drift between the two copies shows.
struct LaunchShape {
  bool vectorized;
  int width;  // blockDim.x
  int ctas;   // CTAs whose sums are combined (gridDim.x of the first launch)
};

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

int floor_pow2(int64_t v) {
  int p = 1;
  while (static_cast<int64_t>(p) * 2 <= v) p *= 2;
  return p;
}

LaunchShape launch_shape(int64_t n, const TorchMeanDevice& device) {
  LaunchShape shape{};
  shape.vectorized = n >= kVectorizeMin;
  const int64_t dim0 = shape.vectorized ? n / kVec : n;
  shape.width = dim0 < kMaxThreads ? floor_pow2(dim0) : kMaxThreads;
  shape.ctas = 1;
  const int64_t per_thread = div_up(n, shape.width);
  if (per_thread >= kMinValuesPerThread && per_thread >= kMaxValuesPerThread) {
    const int64_t blocks_per_sm = device.max_threads_per_multiprocessor / shape.width;
    const int64_t target_grid = device.multiprocessor_count * blocks_per_sm;
    const int64_t fewest = div_up(per_thread, kMaxValuesPerThread);
    const int64_t most = div_up(per_thread, kMinValuesPerThread);
    shape.ctas = static_cast<int>(target_grid < fewest ? fewest : (target_grid > most ? most : target_grid));
  }
  return shape;
}

// combine_accumulators: ((a0 + a1) + a2) + a3.
__device__ __forceinline__ float combine_accumulators(const float (&acc)[kVec]) {
  float value = acc[0];
#pragma unroll
  for (int i = 1; i < kVec; ++i) value = __fadd_rn(value, acc[i]);
  return value;
}

// vectorized_thread_sum (input_vectorized_thread_reduce_impl) for thread t of CTA c: head
// elements before the first 16-byte boundary, float4 body with a stride of W * ctas vectors,
// then the n % 4 tail, each of the last two only in CTA 0.
__device__ float vectorized_thread_sum(const float* __restrict__ x, int64_t n, int misalignment, int t, int c,
                                       int width, int ctas) {
  float acc[kVec] = {0.0f, 0.0f, 0.0f, 0.0f};
  const float* data = x;
  int64_t end = n;
  if (misalignment > 0) {
    if (c == 0 && t >= misalignment && t < kVec) acc[0] = __fadd_rn(acc[0], x[t - misalignment]);
    data = x + (kVec - misalignment);
    end = n - (kVec - misalignment);
  }
  const float4* vectors = reinterpret_cast<const float4*>(data);  // 16-byte aligned by construction
  const int64_t stride = static_cast<int64_t>(width) * ctas;
  for (int64_t k = t + static_cast<int64_t>(c) * width; k * kVec + kVec - 1 < end; k += stride) {
    const float4 v = vectors[k];
    acc[0] = __fadd_rn(acc[0], v.x);
    acc[1] = __fadd_rn(acc[1], v.y);
    acc[2] = __fadd_rn(acc[2], v.z);
    acc[3] = __fadd_rn(acc[3], v.w);
  }
  if (c == 0) {
    const int64_t tail = end - end % kVec + t;
    if (tail < end) acc[0] = __fadd_rn(acc[0], data[tail]);
  }
  return combine_accumulators(acc);
}

// strided_thread_sum (thread_reduce_impl, n < 128, one CTA): groups of four strided loads into
// a0..a3, then up to four single loads into a0, a1, ... in turn.
__device__ float strided_thread_sum(const float* __restrict__ x, int64_t n, int t, int width) {
  float acc[kVec] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int64_t stride = width;
  int64_t idx = t;
  while (idx + (kVec - 1) * stride < n) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[i] = __fadd_rn(acc[i], x[idx + i * stride]);
    idx += kVec * stride;
  }
  for (int i = 0; i < kVec && idx < n; ++i, idx += stride) acc[i] = __fadd_rn(acc[i], x[idx]);
  return combine_accumulators(acc);
}

// block_sum (block_x_reduce): thread t < h adds thread t + h through shared memory for
// h = W/2 .. 32, then warp shuffles down; thread 0 returns the block's sum (other threads return
// partial sums that nothing reads). All threads of the block must call it.
__device__ float block_sum(float value, bool warp_offsets_decreasing) {
  __shared__ float shared[kMaxThreads];
  const int t = threadIdx.x;
  int live = blockDim.x;
  if (live > kWarpSize) {
    shared[t] = value;
    for (int h = live / 2; h >= kWarpSize; h /= 2) {
      __syncthreads();
      if (t < h) {
        value = __fadd_rn(value, shared[t + h]);
        shared[t] = value;
      }
    }
    live = kWarpSize;
  }
  __syncthreads();
  // A block narrower than a warp is one partial warp of `live` lanes: shuffle within those only.
  // Lanes whose source falls past `live` get their own value back; none of them feeds lane 0.
  const unsigned mask = live == kWarpSize ? 0xffffffffu : (1u << live) - 1u;
  if (warp_offsets_decreasing) {
    for (int h = live / 2; h > 0; h /= 2) value = __fadd_rn(value, __shfl_down_sync(mask, value, h, live));
  } else {
    for (int h = 1; h < live; h *= 2) value = __fadd_rn(value, __shfl_down_sync(mask, value, h, live));
  }
  return value;
}

// The per-CTA stage of torch_cuda_mean_f32: thread sums, then the block tree. With one CTA the
// sum is final and thread 0 writes the mean (MeanOps::project: sum * factor); otherwise it
// stages the CTA's sum in partials[c] for torch_mean_combine_kernel.
__global__ void torch_mean_kernel(const float* __restrict__ x, int64_t n, bool vectorized, int misalignment,
                                  bool warp_offsets_decreasing, float factor, float* __restrict__ partials,
                                  float* __restrict__ mean) {
  const int t = threadIdx.x;
  const int c = blockIdx.x;
  float value = vectorized ? vectorized_thread_sum(x, n, misalignment, t, c, blockDim.x, gridDim.x)
                           : strided_thread_sum(x, n, t, blockDim.x);
  value = block_sum(value, warp_offsets_decreasing);
  if (t != 0) return;
  if (gridDim.x == 1) {
    *mean = __fmul_rn(value, factor);
  } else {
    partials[c] = value;
  }
}

// The global stage (global_reduce in the last CTA): thread t gathers partials[t], [t + W], ...
// from 0 in that order, then the same block tree; thread 0 writes the mean.
__global__ void torch_mean_combine_kernel(const float* __restrict__ partials, int ctas, bool warp_offsets_decreasing,
                                          float factor, float* __restrict__ mean) {
  float value = 0.0f;
  for (int j = threadIdx.x; j < ctas; j += blockDim.x) value = __fadd_rn(value, partials[j]);
  value = block_sum(value, warp_offsets_decreasing);
  if (threadIdx.x == 0) *mean = __fmul_rn(value, factor);
}

}  // namespace

TorchMeanDevice torch_mean_cuda_device() {
  int ordinal = 0;
  NIBBLE_CUDA_CHECK(cudaGetDevice(&ordinal));
  TorchMeanDevice device;
  NIBBLE_CUDA_CHECK(cudaDeviceGetAttribute(&device.multiprocessor_count, cudaDevAttrMultiProcessorCount, ordinal));
  NIBBLE_CUDA_CHECK(cudaDeviceGetAttribute(&device.max_threads_per_multiprocessor,
                                           cudaDevAttrMaxThreadsPerMultiProcessor, ordinal));
  device.misalignment = 0;
  return device;
}

int64_t torch_mean_f32_cuda_partials(int64_t n, const TorchMeanDevice& device) {
  const LaunchShape shape = launch_shape(n, device);
  return shape.ctas > 1 ? shape.ctas : 0;
}

void torch_mean_f32_cuda(const float* x, int64_t n, const TorchMeanDevice& device, float* partials, float* mean,
                         cudaStream_t stream) {
  NIBBLE_CHECK(n >= 0, "torch_mean_f32_cuda: n is {}; expected >= 0", n);
  const uintptr_t address = reinterpret_cast<uintptr_t>(x);
  NIBBLE_CHECK(address % sizeof(float) == 0, "torch_mean_f32_cuda: input is not 4-byte aligned");
  const LaunchShape shape = launch_shape(n, device);
  // ATen takes the misalignment from the pointer, and the float4 loads require exactly that one.
  const int misalignment = shape.vectorized ? static_cast<int>(address % 16 / 4) : 0;
  // MeanOps::factor, computed on the host as ATen does (float(1) / numel). An empty input gives
  // NaN, as torch does; the kernel still runs (one thread, no loads) to write it.
  const float factor = n > 0 ? 1.0f / static_cast<float>(n) : std::numeric_limits<float>::quiet_NaN();
  NIBBLE_CHECK(shape.ctas == 1 || partials != nullptr,
               "torch_mean_f32_cuda: n = {} needs {} partial sums of workspace; got none", n, shape.ctas);
  torch_mean_kernel<<<static_cast<unsigned>(shape.ctas), static_cast<unsigned>(shape.width), 0, stream>>>(
      x, n, shape.vectorized, misalignment, device.warp_offsets_decreasing, factor, partials, mean);
  NIBBLE_CUDA_CHECK_LAUNCH();
  if (shape.ctas > 1) {
    torch_mean_combine_kernel<<<1, static_cast<unsigned>(shape.width), 0, stream>>>(
        partials, shape.ctas, device.warp_offsets_decreasing, factor, mean);
    NIBBLE_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace nibble
