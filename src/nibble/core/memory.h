// GPU memory by category. Every device allocation names what it is for, so that `nibble train`
// can report measured memory part by part and `nibble memory` can predict the same parts with
// the same size functions (DESIGN.md principle 4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nibble {

enum class MemoryCategory : uint8_t {
  base_weights,     // packed 4-bit codes (or 16-bit frozen weights)
  quant_constants,  // absmax, nested absmax, code tables
  unquantized,      // embeddings, norms, lm_head, biases
  lora,             // adapter weights
  gradients,        // adapter gradients
  optimizer,        // optimizer states (device part)
  activations,      // saved for backward
  workspace,        // temporaries of one op or one step
  count
};

constexpr size_t kMemoryCategoryCount = static_cast<size_t>(MemoryCategory::count);

std::string_view memory_category_name(MemoryCategory category);

// Bytes in use and the peak per category, for one device. Thread-safe.
class MemoryLedger {
 public:
  void add(MemoryCategory category, size_t bytes);
  void remove(MemoryCategory category, size_t bytes);
  size_t in_use(MemoryCategory category) const;
  size_t total_in_use() const;
  // Peak of the total, and each category's own peak (they need not coincide in time).
  size_t peak_total() const;
  size_t peak(MemoryCategory category) const;
  void reset_peaks();

 private:
  std::array<int64_t, kMemoryCategoryCount> in_use_{};
  std::array<int64_t, kMemoryCategoryCount> peak_{};
  int64_t total_ = 0;
  int64_t peak_total_ = 0;
};

// The ledger of the CUDA device this process uses.
MemoryLedger& device_memory_ledger();

}  // namespace nibble
