#include "nibble/core/memory.h"

#include <algorithm>
#include <mutex>

namespace nibble {

namespace {
std::mutex ledger_mutex;
}

std::string_view memory_category_name(MemoryCategory category) {
  switch (category) {
    case MemoryCategory::base_weights: return "base weights (4-bit)";
    case MemoryCategory::quant_constants: return "quantization constants";
    case MemoryCategory::unquantized: return "unquantized tensors";
    case MemoryCategory::lora: return "LoRA weights";
    case MemoryCategory::gradients: return "LoRA gradients";
    case MemoryCategory::optimizer: return "optimizer states";
    case MemoryCategory::activations: return "activations";
    case MemoryCategory::workspace: return "workspace";
    case MemoryCategory::count: break;
  }
  return "?";
}

void MemoryLedger::add(MemoryCategory category, size_t bytes) {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  auto i = static_cast<size_t>(category);
  in_use_[i] += static_cast<int64_t>(bytes);
  peak_[i] = std::max(peak_[i], in_use_[i]);
  total_ += static_cast<int64_t>(bytes);
  peak_total_ = std::max(peak_total_, total_);
}

void MemoryLedger::remove(MemoryCategory category, size_t bytes) {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  in_use_[static_cast<size_t>(category)] -= static_cast<int64_t>(bytes);
  total_ -= static_cast<int64_t>(bytes);
}

size_t MemoryLedger::in_use(MemoryCategory category) const {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  return static_cast<size_t>(in_use_[static_cast<size_t>(category)]);
}

size_t MemoryLedger::total_in_use() const {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  return static_cast<size_t>(total_);
}

size_t MemoryLedger::peak_total() const {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  return static_cast<size_t>(peak_total_);
}

size_t MemoryLedger::peak(MemoryCategory category) const {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  return static_cast<size_t>(peak_[static_cast<size_t>(category)]);
}

void MemoryLedger::reset_peaks() {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  peak_ = in_use_;
  peak_total_ = total_;
}

MemoryLedger& device_memory_ledger() {
  static MemoryLedger ledger;
  return ledger;
}

}  // namespace nibble
