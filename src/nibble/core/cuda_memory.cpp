// The CUDA half of core/device.h (compiled only when the build has CUDA).
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <cuda_runtime.h>

#include "nibble/core/cuda_check.h"
#include "nibble/core/device.h"

namespace nibble {

bool cuda_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

namespace {

// Freed blocks are kept for reuse by a later request of the same rounded size, so that the tensors
// a step (or a decoded token) allocates do not call cudaMalloc and cudaFree every time: cudaFree
// waits for the whole device. All of nibble's device work is ordered (one blocking stream per
// backend, which synchronizes with the legacy default stream), so a block freed after its last
// use was queued can be handed to the next user at once. On out-of-memory the cache is emptied
// and the request retried before giving up.
class BlockCache {
 public:
  static size_t rounded(size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end()) return nullptr;
    void* pointer = it->second;
    free_.erase(it);
    cached_bytes_ -= size;
    return pointer;
  }
  void give(void* pointer, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.emplace(size, pointer);
    cached_bytes_ += size;
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& entry : free_) cudaFree(entry.second);
    free_.clear();
    cached_bytes_ = 0;
  }
  size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

 private:
  static constexpr size_t kGranule = 512;
  mutable std::mutex mutex_;
  std::unordered_multimap<size_t, void*> free_;
  size_t cached_bytes_ = 0;
};

// Never destroyed: freeing device memory after the CUDA context is gone at exit would fail.
BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;
  return *cache;
}

}  // namespace

void* cuda_allocate(size_t bytes, MemoryCategory category) {
  if (bytes == 0) return nullptr;
  const size_t size = BlockCache::rounded(bytes);
  void* pointer = block_cache().take(size);
  if (pointer == nullptr) {
    cudaError_t status = cudaMalloc(&pointer, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the (non-sticky) error, then retry with the cache emptied
      block_cache().release_all();
      status = cudaMalloc(&pointer, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      throw OutOfMemoryError(fmt::format(
          "out of GPU memory: {} needed {:.2f} MiB, {:.2f} MiB free of {:.2f} MiB",
          memory_category_name(category), bytes / 1048576.0, free_bytes / 1048576.0,
          total_bytes / 1048576.0));
    }
    NIBBLE_CUDA_CHECK(status);
  }
  device_memory_ledger().add(category, bytes);
  return pointer;
}

void cuda_release(void* pointer, size_t bytes, MemoryCategory category) {
  if (pointer == nullptr) return;
  block_cache().give(pointer, BlockCache::rounded(bytes));  // never throws: called from destructors
  device_memory_ledger().remove(category, bytes);
}

size_t cuda_cached_bytes() { return block_cache().cached_bytes(); }

void cuda_release_cached() { block_cache().release_all(); }

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
