// How PyTorch computes torch.mean of a contiguous float32[n] CUDA tensor, and its replay here.
// Read from ATen: native/ReduceOps.cpp (mean_out), native/cuda/ReduceMomentKernel.cu
// (mean_kernel_impl), native/SharedReduceOps.h (MeanOps) and native/cuda/Reduce.cuh
// (setReduceConfig, ReduceOp), as of PyTorch 2.15; the target is 2.11, which already has the
// halving warp-shuffle order (it came in late 2025; TorchMeanDevice can select the old one).
//
// Dispatch. On CUDA, mean_out does not sum and divide (that is the CPU path): it runs mean_stub,
// whose mean_kernel_impl<float> launches gpu_reduce_kernel with MeanOps<float>: every reduce and
// combine step is one float32 add, and the final projection is `sum * factor` with
// factor = float(1) / numel, a float reciprocal, so the mean is rounded twice (1/n, then the
// product). vt0 = input_vec_size = 4.
//
// Launch (setReduceConfig for one output, reducing the only, fastest dimension):
//   * n >= 128: the input is read as float4 vectors ("vectorize along input"), and the block
//     width is sized from n / 4; below 128 the plain strided loop is used, sized from n.
//   * block = (width, 1), width = the largest power of two <= that size, at most 512.
//   * values per thread v = ceil(n / width). If v >= 256 (n > 130560) the input is also split
//     over ctas = clamp(SMs * (max threads per SM / width), ceil(v / 256), ceil(v / 16)) CTAs
//     (132 SMs * 4 = 528 on an H100 SXM), whose results meet in a global buffer.
//
// Order of additions (ReduceOp in Reduce.cuh), thread t of CTA c, W = width, S = W * ctas:
//   * vectorized: four accumulators a0..a3 start at 0; vector k = t + c*W, t + c*W + S, ... while
//     4k+3 < n adds x[4k+i] to a_i. The n % 4 tail elements x[4*(n/4) + t] go to a0 of threads
//     t < n % 4 of CTA 0 (after its loop). A misaligned pointer first gives the head elements
//     before the first 16-byte boundary to a0 of threads shift..3 of CTA 0.
//   * strided (n < 128): four accumulators; groups of four strided loads while idx + 3W < n,
//     then up to four single strided loads into a0, a1, ... in turn.
//   * the thread's value is ((a0 + a1) + a2) + a3.
//   * block: while the live width exceeds 32, thread t < h adds thread t + h (h = W/2 ... 32,
//     through shared memory); then a warp shuffle-down tree, offsets 16, 8, ..., 1 (or from W/2
//     when W < 32). Lane 0 holds the block's sum.
//   * global (ctas > 1): the last CTA's thread t sums buffer[t], buffer[t + W], ... in order from
//     0, then runs the same block tree.
// Every operand is finite and each step is one IEEE float add, so the replay is exact as long as
// this file is compiled without FMA contraction or reassociation (CMakeLists sets
// -ffp-contract=off; nothing here multiplies before adding anyway).
#include "nibble/quant/torch_mean.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace nibble {
namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 512;       // mnt_wrapper<float>::MAX_NUM_THREADS
constexpr int kVec = 4;                // vt0 and input_vec_size for float
constexpr int64_t kVectorizeMin = 128; // dim0 >= 128 turns on input vectorization
constexpr int64_t kMinValuesPerThread = 16;
constexpr int64_t kMaxValuesPerThread = 256;

struct LaunchShape {
  bool vectorized;
  int width;  // blockDim.x; blockDim.y is 1 for a single output
  int ctas;   // CTAs per output (gridDim.y)
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
  int64_t dim0 = shape.vectorized ? n / kVec : n;
  shape.width = dim0 < kMaxThreads ? floor_pow2(dim0) : kMaxThreads;
  shape.ctas = 1;
  // values_per_thread counts elements, not vectors. Splitting across warps needs >= 16 (a no-op
  // with one warp row, but it is the precondition of the CTA split), the CTA split >= 256.
  int64_t per_thread = div_up(n, shape.width);
  if (per_thread >= kMinValuesPerThread && per_thread >= kMaxValuesPerThread) {
    int64_t blocks_per_sm = device.max_threads_per_multiprocessor / shape.width;
    int64_t target_grid = device.multiprocessor_count * blocks_per_sm;
    int64_t fewest = div_up(per_thread, kMaxValuesPerThread);
    int64_t most = div_up(per_thread, kMinValuesPerThread);
    shape.ctas = static_cast<int>(std::clamp(target_grid, fewest, most));
  }
  return shape;
}

float combine_accumulators(const float (&acc)[kVec]) {
  float value = acc[0];
  for (int i = 1; i < kVec; ++i) value = value + acc[i];
  return value;
}

// input_vectorized_thread_reduce_impl for thread t of CTA c.
float vectorized_thread_sum(const float* x, int64_t n, const LaunchShape& shape, int misalignment, int t, int c) {
  float acc[kVec] = {0.0f, 0.0f, 0.0f, 0.0f};
  const float* data = x;
  int64_t end = n;
  if (misalignment > 0) {
    // The head before the first aligned vector: element t - shift for threads shift..3 of CTA 0.
    if (c == 0 && t >= misalignment && t < kVec) acc[0] = acc[0] + x[t - misalignment];
    data = x + (kVec - misalignment);
    end = n - (kVec - misalignment);
  }
  const int64_t stride = static_cast<int64_t>(shape.width) * shape.ctas;
  for (int64_t k = t + static_cast<int64_t>(c) * shape.width; k * kVec + kVec - 1 < end; k += stride) {
    for (int i = 0; i < kVec; ++i) acc[i] = acc[i] + data[k * kVec + i];
  }
  if (c == 0) {
    int64_t tail = end - end % kVec + t;
    if (tail < end) acc[0] = acc[0] + data[tail];
  }
  return combine_accumulators(acc);
}

// thread_reduce_impl (contiguous, output_vec_size 1) for thread t; only ever one CTA.
float strided_thread_sum(const float* x, int64_t n, const LaunchShape& shape, int t) {
  float acc[kVec] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int64_t stride = shape.width;
  int64_t idx = t;
  while (idx + (kVec - 1) * stride < n) {
    for (int i = 0; i < kVec; ++i) acc[i] = acc[i] + x[idx + i * stride];
    idx += kVec * stride;
  }
  for (int i = 0; i < kVec && idx < n; ++i, idx += stride) acc[i] = acc[i] + x[idx];
  return combine_accumulators(acc);
}

// block_x_reduce over value[0..width): the sum that lane 0 ends with. Updating in place in
// ascending t reads value[t + h] before it changes, as the simultaneous shuffle does.
float block_sum(std::vector<float>& value, int width, bool warp_offsets_decreasing) {
  int live = width;
  if (live > kWarpSize) {
    for (int h = live / 2; h >= kWarpSize; h /= 2) {
      for (int t = 0; t < h; ++t) value[t] = value[t] + value[t + h];
    }
    live = kWarpSize;
  }
  if (warp_offsets_decreasing) {
    for (int h = live / 2; h > 0; h /= 2) {
      for (int t = 0; t < h; ++t) value[t] = value[t] + value[t + h];
    }
  } else {
    for (int h = 1; h < live; h *= 2) {
      for (int t = 0; t + h < live; ++t) value[t] = value[t] + value[t + h];
    }
  }
  return value[0];
}

}  // namespace

float torch_cuda_mean_f32(const float* x, int64_t n) { return torch_cuda_mean_f32(x, n, TorchMeanDevice{}); }

float torch_cuda_mean_f32(const float* x, int64_t n, const TorchMeanDevice& device) {
  if (n <= 0) return std::numeric_limits<float>::quiet_NaN();
  const LaunchShape shape = launch_shape(n, device);
  const int misalignment = shape.vectorized ? device.misalignment % kVec : 0;
  std::vector<float> lanes(static_cast<size_t>(shape.width));
  std::vector<float> cta_sums(static_cast<size_t>(shape.ctas));
  for (int c = 0; c < shape.ctas; ++c) {
    for (int t = 0; t < shape.width; ++t) {
      lanes[t] = shape.vectorized ? vectorized_thread_sum(x, n, shape, misalignment, t, c)
                                  : strided_thread_sum(x, n, shape, t);
    }
    cta_sums[c] = block_sum(lanes, shape.width, device.warp_offsets_decreasing);
  }
  float sum = cta_sums[0];
  if (shape.ctas > 1) {
    // global_reduce: the last CTA's thread t gathers the staged sums t, t + W, ... from 0.
    for (int t = 0; t < shape.width; ++t) {
      float value = 0.0f;
      for (int j = t; j < shape.ctas; j += shape.width) value = value + cta_sums[j];
      lanes[t] = value;
    }
    sum = block_sum(lanes, shape.width, device.warp_offsets_decreasing);
  }
  const float factor = 1.0f / static_cast<float>(n);  // MeanOps::factor, a float reciprocal
  return sum * factor;                                // MeanOps::project
}

}  // namespace nibble
