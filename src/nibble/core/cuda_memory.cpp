// The CUDA half of core/device.h (compiled only when the build has CUDA).
#include <cstring>

#include <cuda_runtime.h>

#include "nibble/core/cuda_check.h"
#include "nibble/core/device.h"

namespace nibble {

bool cuda_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

void* cuda_allocate(size_t bytes, MemoryCategory category) {
  if (bytes == 0) return nullptr;
  void* pointer = nullptr;
  cudaError_t status = cudaMalloc(&pointer, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the (non-sticky) error
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    throw OutOfMemoryError(fmt::format(
        "out of GPU memory: {} needed {:.2f} MiB, {:.2f} MiB free of {:.2f} MiB",
        memory_category_name(category), bytes / 1048576.0, free_bytes / 1048576.0,
        total_bytes / 1048576.0));
  }
  NIBBLE_CUDA_CHECK(status);
  device_memory_ledger().add(category, bytes);
  return pointer;
}

void cuda_release(void* pointer, size_t bytes, MemoryCategory category) {
  if (pointer == nullptr) return;
  cudaFree(pointer);  // never throws: called from destructors
  device_memory_ledger().remove(category, bytes);
}

void copy_bytes(void* destination, Device destination_device, const void* source,
                Device source_device, size_t bytes) {
  if (bytes == 0) return;
  if (destination_device == Device::cpu && source_device == Device::cpu) {
    std::memcpy(destination, source, bytes);  // works without a GPU or driver
    return;
  }
  NIBBLE_CUDA_CHECK(cudaMemcpy(destination, source, bytes, cudaMemcpyDefault));
}

void cuda_synchronize() { NIBBLE_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace nibble
