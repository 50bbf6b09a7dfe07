// Where optimizer state lives: host memory (CPU training), device memory, or CUDA managed
// memory ("paged", as bitsandbytes' paged optimizers).
//
// How paging works. A paged buffer comes from cudaMallocManaged(cudaMemAttachGlobal): one
// address valid on host and device, whose pages the driver migrates on demand. Before each
// update the optimizer calls prefetch_to_device(), a cudaMemPrefetchAsync to the GPU on the
// update's stream, so the kernel finds its pages resident instead of faulting them in one by
// one; this needs cudaDevAttrConcurrentManagedAccess (Linux, Pascal or newer) and is skipped
// where the device lacks it. No cudaMemAdvise is given: when other allocations (activations of a
// long sequence) need the memory, the driver evicts least-recently-used managed pages to host
// RAM, and the next prefetch brings them back. That is what lets a training step survive a
// memory spike that would otherwise be an out-of-memory error: the states are the largest
// long-lived thing the driver may move.
//
// A managed allocation is never larger than what cudaMemGetInfo reports free on the device at
// that moment (it throws OutOfMemoryError naming both sizes instead): oversubscribing managed
// memory at allocation time can hang the lent GPU machines. New buffers are zero-filled on the
// device, which makes their pages resident, so the free figure the next allocation sees counts
// them. As bitsandbytes, only tensors of at least kPagedMinNumel elements are paged; smaller
// ones cost more in page granularity than they save.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nibble/core/device.h"

namespace nibble {

constexpr int64_t kPagedMinNumel = 100000;  // bitsandbytes' get_state_buffer threshold

enum class StatePlacement : uint8_t { host, device, managed };

// A zero-filled byte buffer that frees itself. Device and managed buffers are counted in the
// device memory ledger under MemoryCategory::optimizer.
class StateBuffer {
 public:
  StateBuffer() = default;
  StateBuffer(size_t bytes, StatePlacement placement);
  ~StateBuffer();
  StateBuffer(StateBuffer&& other) noexcept;
  StateBuffer& operator=(StateBuffer&& other) noexcept;
  StateBuffer(const StateBuffer&) = delete;
  StateBuffer& operator=(const StateBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  StatePlacement placement() const { return placement_; }
  // The device a copy to or from this buffer goes through (managed memory: cuda).
  Device device() const { return placement_ == StatePlacement::host ? Device::cpu : Device::cuda; }
  // For managed buffers on a device with concurrent managed access: queue a migration of the
  // pages to the current device on `stream` (a cudaStream_t; 0 is the legacy default stream).
  // Otherwise nothing.
  void prefetch_to_device(void* stream = nullptr) const;

 private:
  void release() noexcept;

  void* data_ = nullptr;
  size_t bytes_ = 0;
  StatePlacement placement_ = StatePlacement::host;
};

// Checks a managed allocation of `bytes` against free device memory; throws OutOfMemoryError
// naming both when it does not fit. Public so the refusal can be tested without allocating.
void check_managed_fits(size_t bytes, size_t free_bytes);

}  // namespace nibble
