// Programmatic dependent launch (Hopper): a kernel launched through launch_dependent() may be
// scheduled while the kernel before it on the stream is still running. A decode step is a chain
// of short kernels, each of which would otherwise start only after the previous one drained and
// then pay its own launch and first-load latency; this overlaps both with the previous kernel's
// tail, and a GEMV can even have its weight loads in flight by then (they depend on no earlier op).
//
// The contract, for every kernel launched this way: call dependency_wait() before the first read
// of anything an earlier op wrote and before the first write of anything an earlier op reads
// (after the wait, every earlier op on the stream has finished and its writes are visible); call
// allow_dependents() once the next kernel may start taking SM slots (early: it only lets it be
// scheduled, and its own dependency_wait() still waits for this kernel to finish). Both are no-ops
// when the kernel was launched normally, so such kernels stay correct on any launch path.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

__device__ __forceinline__ void dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Compute capability 9.0 or newer on the current device, unless NIBBLE_DEPENDENT_LAUNCH=0 turns
// it off (to measure what it buys). Read once per process.
inline bool dependent_launch_enabled() {
  static const bool enabled = [] {
    const char* setting = std::getenv("NIBBLE_DEPENDENT_LAUNCH");
    if (setting != nullptr && std::strcmp(setting, "0") == 0) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    return major >= 9;
  }();
  return enabled;
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...), allowed to start before the previous
// kernel on the stream has finished (see the contract above); a plain launch where unsupported.
template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                      Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = dependent_launch_enabled() ? 1 : 0;
  NIBBLE_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...));
}

}  // namespace nibble::cuda
