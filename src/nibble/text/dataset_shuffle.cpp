#include "nibble/text/dataset_shuffle.h"

#include <numeric>
#include <utility>

#include "nibble/core/error.h"

namespace nibble {

uint64_t uniform_below(Rng& rng, uint64_t bound) {
  NIBBLE_ASSERT(bound >= 1);
  // 2^64 mod bound, computed in 64 bits: values below it would make the low residues likelier.
  const uint64_t reject_below = (0 - bound) % bound;
  while (true) {
    const uint64_t high = rng.next_uint32();
    const uint64_t value = (high << 32) | rng.next_uint32();
    if (value >= reject_below) return value % bound;
  }
}

std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng rng(seed, stream);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace nibble
