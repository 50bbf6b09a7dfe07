// Tensor: a shape, an element type, a device and shared storage. Contiguous, row-major.
// Views (reshape, a file's mmap) share storage; nothing here computes, backends do.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nibble/core/device.h"
#include "nibble/core/dtype.h"
#include "nibble/core/error.h"
#include "nibble/core/memory.h"

namespace nibble {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "[4096, 11008]"

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised storage. Device storage is counted in the ledger under `category`.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu,
                      MemoryCategory category = MemoryCategory::workspace);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu,
                      MemoryCategory category = MemoryCategory::workspace);
  // Memory owned by someone else (an mmap'd file, a caller's buffer); `owner` keeps it alive.
  static Tensor from_external(void* data, const Shape& shape, DType dtype, Device device,
                              std::shared_ptr<const void> owner);

  bool defined() const { return storage_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  size_t rank() const { return shape_.size(); }
  int64_t dim(size_t i) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* data() { return data_; }
  const void* data() const { return data_; }
  // Typed access; checks that T has the element size of dtype().
  template <typename T>
  T* data_as() {
    check_element_size(sizeof(T));
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data_as() const {
    check_element_size(sizeof(T));
    return static_cast<const T*>(data_);
  }

  // Same storage, another shape with the same number of elements.
  Tensor reshape(const Shape& shape) const;
  // Same storage, another element type of the same total size (a byte reinterpretation).
  Tensor view_as(DType dtype, const Shape& shape) const;
  // Same storage, rows [first, first + count) of the first dimension (a contiguous block).
  Tensor rows(int64_t first, int64_t count) const;
  // A copy on `device` (a copy even when the device is the same).
  Tensor to(Device device, MemoryCategory category = MemoryCategory::workspace) const;
  void copy_from(const Tensor& source);

  // "BF16[4096, 11008] on cuda", for error messages.
  std::string describe() const;

 private:
  void check_element_size(size_t size) const;

  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
  std::shared_ptr<const void> storage_;  // keeps the bytes alive
  void* data_ = nullptr;
};

}  // namespace nibble
