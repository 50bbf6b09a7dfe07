#include "nibble/backend/cuda/elementwise.cuh"

#include "nibble/backend/cuda/bad_index.h"
#include "nibble/backend/cuda/dependent_launch.cuh"
#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"
#include "nibble/core/rng.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void embedding_kernel(T* out, const int32_t* ids, const T* table, int64_t T_, int64_t C, int64_t V,
                                 unsigned long long* bad_index) {
  allow_dependents();
  dependency_wait();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < T_ * C; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / C, c = i % C;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {
      if (c == 0) atomicMin(bad_index, pack_bad_index(t, id));
      continue;
    }
    out[i] = table[id * C + c];
  }
}

template <typename T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
  allow_dependents();
  dependency_wait();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}

template <typename To, typename From>
__global__ void cast_kernel(To* out, const From* in, int64_t n) {
  allow_dependents();
  dependency_wait();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<To>(to_f32(in[i]));
}

template <typename To, typename From>
__global__ void dropout_kernel(To* out, const From* in, int64_t n, float p, float scale, uint64_t seed,
                               uint64_t stream_id) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const bool keep = philox_uniform_at(seed, stream_id, static_cast<uint64_t>(i)) >= p;
    out[i] = from_f32<To>(keep ? to_f32(in[i]) * scale : 0.0f);
  }
}

// HF's LlamaMLP: act_fn(gate) is a tensor of the activation dtype (silu computed in fp32 and
// rounded), then multiplied by up and rounded again. expf, not __expf, to stay within an ulp.
template <typename T>
__global__ void swiglu_kernel(T* out, const T* gate, const T* up, int64_t n) {
  allow_dependents();
  dependency_wait();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = to_f32(gate[i]);
    const float silu = round_as<T>(g / (1.0f + expf(-g)));
    out[i] = from_f32<T>(silu * to_f32(up[i]));
  }
}

// The forward's rounded activation feeds dup (autograd saves it); silu' is taken in fp32 with
// each output rounded once.
template <typename T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = to_f32(gate[i]), dy = to_f32(dout[i]);
    const float sigmoid = 1.0f / (1.0f + expf(-g));
    dup[i] = from_f32<T>(dy * round_as<T>(g / (1.0f + expf(-g))));  // the forward's expression
    dgate[i] = from_f32<T>(dy * to_f32(up[i]) * (sigmoid * (1.0f + g * (1.0f - sigmoid))));
  }
}

}  // namespace

void embedding_forward_launch(void* out, const int32_t* ids, const void* table, int64_t T, int64_t C, int64_t V,
                              DType dtype, unsigned long long* bad_index, cudaStream_t stream) {
  if (T * C == 0) return;
  dispatch_activation(dtype, "embedding_forward", [&](auto tag) {
    using E = decltype(tag);
    launch_dependent(embedding_kernel<E>, dim3(grid_for(T * C, kThreads)), dim3(kThreads), 0, stream,
                     static_cast<E*>(out), ids, static_cast<const E*>(table), T, C, V, bad_index);
  });
}

void add_forward_launch(void* out, const void* a, const void* b, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_activation(dtype, "add_forward", [&](auto tag) {
    using E = decltype(tag);
    launch_dependent(add_kernel<E>, dim3(grid_for(n, kThreads)), dim3(kThreads), 0, stream, static_cast<E*>(out),
                     static_cast<const E*>(a), static_cast<const E*>(b), n);
  });
}

void cast_launch(void* out, DType out_dtype, const void* in, DType in_dtype, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_activation(out_dtype, "cast", [&](auto out_tag) {
    dispatch_activation(in_dtype, "cast", [&](auto in_tag) {
      using To = decltype(out_tag);
      using From = decltype(in_tag);
      launch_dependent(cast_kernel<To, From>, dim3(grid_for(n, kThreads)), dim3(kThreads), 0, stream,
                       static_cast<To*>(out), static_cast<const From*>(in), n);
    });
  });
}

void dropout_launch(void* out, DType out_dtype, const void* in, DType in_dtype, int64_t n, float p, float scale,
                    uint64_t seed, uint64_t stream_id, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_activation(out_dtype, "dropout", [&](auto out_tag) {
    dispatch_activation(in_dtype, "dropout", [&](auto in_tag) {
      using To = decltype(out_tag);
      using From = decltype(in_tag);
      dropout_kernel<To, From><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
          static_cast<To*>(out), static_cast<const From*>(in), n, p, scale, seed, stream_id);
    });
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void swiglu_forward_launch(void* out, const void* gate, const void* up, int64_t n, DType dtype,
                           cudaStream_t stream) {
  if (n == 0) return;
  dispatch_activation(dtype, "swiglu_forward", [&](auto tag) {
    using E = decltype(tag);
    launch_dependent(swiglu_kernel<E>, dim3(grid_for(n, kThreads)), dim3(kThreads), 0, stream, static_cast<E*>(out),
                     static_cast<const E*>(gate), static_cast<const E*>(up), n);
  });
}

void swiglu_backward_launch(void* dgate, void* dup, const void* dout, const void* gate, const void* up, int64_t n,
                            DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_activation(dtype, "swiglu_backward", [&](auto tag) {
    using E = decltype(tag);
    swiglu_backward_kernel<E><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<E*>(dgate), static_cast<E*>(dup), static_cast<const E*>(dout), static_cast<const E*>(gate),
        static_cast<const E*>(up), n);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace nibble::cuda
