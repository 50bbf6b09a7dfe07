#include "nibble/core/tensor.h"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace nibble {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    NIBBLE_CHECK(d >= 0, "negative dimension {} in shape", d);
    // Shapes come from files too; a product past 2^63 must be an error, not a wrapped size.
    NIBBLE_CHECK(!__builtin_mul_overflow(n, d, &n), "shape {} has more elements than fit in 64 bits",
                 shape_to_string(shape));
  }
  return n;
}

std::string shape_to_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string_view device_name(Device device) { return device == Device::cpu ? "cpu" : "cuda"; }

Device parse_device(std::string_view name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda" || name == "gpu") return Device::cuda;
  fail("unknown device '{}': expected cpu or cuda", name);
}

#ifndef NIBBLE_WITH_CUDA
bool cuda_available() { return false; }
void* cuda_allocate(size_t, MemoryCategory) {
  fail("this build of nibble has no CUDA backend (nvcc was not found at build time); use --device cpu");
}
void cuda_release(void*, size_t, MemoryCategory) {}
size_t cuda_cached_bytes() { return 0; }
void cuda_release_cached() {}
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                size_t bytes) {
  NIBBLE_CHECK(destination_device == Device::cpu && source_device == Device::cpu,
               "this build of nibble has no CUDA backend");
  if (bytes) std::memcpy(destination, source, bytes);
}
void cuda_synchronize() {}
#endif

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryCategory category) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  size_t bytes = t.nbytes();
  if (device == Device::cpu) {
    // 64-byte alignment for vector loads; never a zero-size request.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p == nullptr) throw OutOfMemoryError(fmt::format("out of host memory allocating {} bytes", bytes));
    t.storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
    t.data_ = p;
  } else {
    void* p = cuda_allocate(bytes, category);
    t.storage_ = std::shared_ptr<void>(p, [bytes, category](void* q) { cuda_release(q, bytes, category); });
    t.data_ = p;
  }
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device, MemoryCategory category) {
  Tensor t = empty(shape, dtype, device, category);
  if (device == Device::cpu) {
    std::memset(t.data_, 0, t.nbytes());
  } else {
    std::vector<unsigned char> host(t.nbytes(), 0);
    copy_bytes(t.data_, device, host.data(), Device::cpu, t.nbytes());
  }
  return t;
}

Tensor Tensor::from_external(void* data, const Shape& shape, DType dtype, Device device,
                             std::shared_ptr<const void> owner) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::move(owner);
  t.data_ = data;
  return t;
}

int64_t Tensor::dim(size_t i) const {
  NIBBLE_CHECK(i < shape_.size(), "dimension {} asked of a tensor of rank {}", i, shape_.size());
  return shape_[i];
}

Tensor Tensor::reshape(const Shape& shape) const {
  NIBBLE_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", describe(), shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::rows(int64_t first, int64_t count) const {
  NIBBLE_CHECK(rank() >= 1 && first >= 0 && count >= 0 && first + count <= shape_[0],
               "rows [{}, {}) of {}: expected a range within the first dimension", first, first + count, describe());
  Tensor t = *this;
  t.shape_[0] = count;
  const size_t row_bytes = shape_[0] == 0 ? 0 : nbytes() / static_cast<size_t>(shape_[0]);
  t.data_ = static_cast<char*>(data_) + static_cast<size_t>(first) * row_bytes;
  return t;
}

Tensor Tensor::view_as(DType dtype, const Shape& shape) const {
  NIBBLE_CHECK(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype) == nbytes(),
               "cannot view {} as {}{}", describe(), dtype_safetensors_name(dtype), shape_to_string(shape));
  Tensor t = *this;
  t.dtype_ = dtype;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::to(Device device, MemoryCategory category) const {
  Tensor t = empty(shape_, dtype_, device, category);
  copy_bytes(t.data_, device, data_, device_, nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& source) {
  NIBBLE_CHECK(source.nbytes() == nbytes() && source.dtype() == dtype_, "cannot copy {} into {}",
               source.describe(), describe());
  copy_bytes(data_, device_, source.data_, source.device_, nbytes());
}

std::string Tensor::describe() const {
  return fmt::format("{}{} on {}", dtype_safetensors_name(dtype_), shape_to_string(shape_), device_name(device_));
}

void Tensor::check_element_size(size_t size) const {
  NIBBLE_CHECK(size == dtype_size(dtype_), "typed access of {} with a {}-byte element type", describe(), size);
}

}  // namespace nibble
