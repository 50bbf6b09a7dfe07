// The safetensors writer: header and layout as the reference writer makes them, written atomically.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/safetensors.h"

namespace nibble {

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    NIBBLE_CHECK(!name.empty() && name != "__metadata__", "{}: cannot save a tensor named '{}'", path, name);
    NIBBLE_CHECK(seen.insert(name).second, "{}: tensor '{}' is given twice; expected unique names", path, name);
    NIBBLE_CHECK(tensor.defined(), "{}: tensor '{}' has no storage", path, name);
  }

  // Largest elements first, so each tensor's offset (and, with the 8-aligned header, its file
  // offset) is a multiple of its element size; ties by name, as the reference writer does.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    size_t sa = dtype_size(tensors[a].second.dtype()), sb = dtype_size(tensors[b].second.dtype());
    return sa != sb ? sa > sb : tensors[a].first < tensors[b].first;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    nlohmann::ordered_json entry;
    entry["dtype"] = std::string(dtype_safetensors_name(t.dtype()));
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + t.nbytes()};
    header[tensors[i].first] = std::move(entry);
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t length = text.size();

  try {
    AtomicFileWriter writer(path);
    unsigned char length_bytes[8];
    std::memcpy(length_bytes, &length, 8);  // the host is little-endian (static_assert in safetensors.cpp)
    writer.write(length_bytes, 8);
    writer.write(text.data(), text.size());
    for (size_t i : order) {
      const Tensor& t = tensors[i].second;
      if (t.nbytes() == 0) continue;
      if (t.device() == Device::cpu) {
        writer.write(t.data(), t.nbytes());
      } else {
        Tensor host = t.to(Device::cpu);  // one tensor at a time keeps the host copy small
        writer.write(host.data(), host.nbytes());
      }
    }
    writer.commit();
  } catch (...) {
    rethrow_with_context(fmt::format("saving {}", path));
  }
}

}  // namespace nibble
