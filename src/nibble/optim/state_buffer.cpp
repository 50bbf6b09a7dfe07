#include "nibble/optim/state_buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "nibble/core/error.h"

#if defined(NIBBLE_WITH_CUDA)
#include <cuda_runtime.h>

#include "nibble/core/cuda_check.h"
#endif

namespace nibble {

void check_managed_fits(size_t bytes, size_t free_bytes) {
  if (bytes > free_bytes)
    throw OutOfMemoryError(fmt::format(
        "paged optimizer state: {} bytes of managed memory requested but the GPU reports only {} bytes free; "
        "asking for more than is free can hang the device, so nibble refuses (use a smaller model, LoRA rank or "
        "optim paged_adamw_8bit)",
        bytes, free_bytes));
}

StateBuffer::StateBuffer(size_t bytes, StatePlacement placement) : bytes_(bytes), placement_(placement) {
  if (bytes == 0) return;
  if (placement == StatePlacement::host) {
    data_ = std::calloc(bytes, 1);
    if (data_ == nullptr) throw OutOfMemoryError(fmt::format("optimizer state: {} bytes of host memory", bytes));
    return;
  }
#if defined(NIBBLE_WITH_CUDA)
  if (placement == StatePlacement::device) {
    data_ = cuda_allocate(bytes, MemoryCategory::optimizer);
    NIBBLE_CUDA_CHECK(cudaMemset(data_, 0, bytes));
    return;
  }
  size_t free_bytes = 0, total_bytes = 0;
  NIBBLE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  check_managed_fits(bytes, free_bytes);
  NIBBLE_CUDA_CHECK(cudaMallocManaged(&data_, bytes, cudaMemAttachGlobal));
  // cudaMemset runs on the device, so the pages are created there (resident, counted as used).
  cudaError_t status = cudaMemset(data_, 0, bytes);
  if (status == cudaSuccess) status = cudaDeviceSynchronize();
  if (status != cudaSuccess) {
    cudaFree(data_);
    data_ = nullptr;
    NIBBLE_CUDA_CHECK(status);
  }
  device_memory_ledger().add(MemoryCategory::optimizer, bytes);
#else
  fail("optimizer state on the GPU needs a build with CUDA");
#endif
}

StateBuffer::~StateBuffer() { release(); }

StateBuffer::StateBuffer(StateBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      placement_(other.placement_) {}

StateBuffer& StateBuffer::operator=(StateBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    placement_ = other.placement_;
  }
  return *this;
}

void StateBuffer::release() noexcept {
  if (data_ == nullptr) return;
  if (placement_ == StatePlacement::host) {
    std::free(data_);
  } else {
#if defined(NIBBLE_WITH_CUDA)
    if (placement_ == StatePlacement::device) {
      try {
        cuda_release(data_, bytes_, MemoryCategory::optimizer);
      } catch (...) {
        // Freeing during teardown: nothing useful can be done with the error.
      }
    } else {
      cudaFree(data_);
      device_memory_ledger().remove(MemoryCategory::optimizer, bytes_);
    }
#endif
  }
  data_ = nullptr;
}

void StateBuffer::prefetch_to_device(void* stream) const {
#if defined(NIBBLE_WITH_CUDA)
  if (placement_ != StatePlacement::managed || data_ == nullptr) return;
  int device = 0, concurrent = 0;
  NIBBLE_CUDA_CHECK(cudaGetDevice(&device));
  NIBBLE_CUDA_CHECK(cudaDeviceGetAttribute(&concurrent, cudaDevAttrConcurrentManagedAccess, device));
  if (!concurrent) return;
  cudaMemLocation location{};
  location.type = cudaMemLocationTypeDevice;
  location.id = device;
  NIBBLE_CUDA_CHECK(cudaMemPrefetchAsync(data_, bytes_, location, 0, static_cast<cudaStream_t>(stream)));
#endif
}

}  // namespace nibble
