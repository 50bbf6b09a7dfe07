#include "nibble/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "nibble/core/error.h"

namespace nibble {

namespace {
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
}

void check_sampling_options(const SamplingOptions& o) {
  NIBBLE_CHECK(o.temperature >= 0.0f && std::isfinite(o.temperature),
               "temperature {}: expected 0 (greedy) or a positive number", o.temperature);
  NIBBLE_CHECK(o.top_k >= 0, "top_k {}: expected 0 (off) or a positive count", o.top_k);
  NIBBLE_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, "top_p {}: expected a number in (0, 1]", o.top_p);
  NIBBLE_CHECK(o.repetition_penalty > 0.0f && std::isfinite(o.repetition_penalty),
               "repetition_penalty {}: expected a positive number (1 = off)", o.repetition_penalty);
}

void apply_repetition_penalty(std::vector<float>& logits, const std::vector<int32_t>& history, float penalty) {
  if (penalty == 1.0f) return;
  std::unordered_set<int32_t> seen;
  for (int32_t id : history) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size() || !seen.insert(id).second) continue;
    float& x = logits[static_cast<size_t>(id)];
    x = x < 0.0f ? x * penalty : x / penalty;
  }
}

void apply_top_k(std::vector<float>& logits, int64_t k) {
  if (k <= 0 || static_cast<size_t>(k) >= logits.size()) return;
  std::vector<float> sorted = logits;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[static_cast<size_t>(k - 1)];
  for (float& x : logits)
    if (x < kth) x = kMinusInf;
}

void apply_top_p(std::vector<float>& logits, float top_p) {
  if (top_p >= 1.0f) return;
  std::vector<size_t> order(logits.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Ascending, as HF sorts; stable so equal logits keep index order.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] < logits[b]; });
  const float top = logits[order.back()];
  if (top == kMinusInf) return;
  double total = 0.0;
  for (float x : logits) total += std::exp(static_cast<double>(x) - top);
  double cumulative = 0.0;
  const double cut = 1.0 - static_cast<double>(top_p);
  for (size_t i = 0; i + 1 < order.size(); ++i) {  // the last (most likely) token always stays
    cumulative += std::exp(static_cast<double>(logits[order[i]]) - top) / total;
    if (cumulative <= cut) logits[order[i]] = kMinusInf;
    else break;
  }
}

int32_t argmax(const std::vector<float>& logits) {
  NIBBLE_ASSERT(!logits.empty());
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  check_sampling_options(options);
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::next(const float* logits, int64_t V, const std::vector<int32_t>& history) {
  std::vector<float> x(logits, logits + V);
  apply_repetition_penalty(x, history, options_.repetition_penalty);
  if (options_.temperature == 0.0f) return argmax(x);
  for (float& v : x) v /= options_.temperature;
  apply_top_k(x, options_.top_k);
  apply_top_p(x, options_.top_p);
  // Softmax in double, then invert the cumulative distribution at one uniform draw.
  const float top = *std::max_element(x.begin(), x.end());
  std::vector<double> p(x.size());
  double total = 0.0;
  for (size_t i = 0; i < x.size(); ++i) total += p[i] = std::exp(static_cast<double>(x[i]) - top);
  const double u = uniform() * total;
  double cumulative = 0.0;
  int32_t last_possible = argmax(x);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0.0) continue;
    cumulative += p[i];
    last_possible = static_cast<int32_t>(i);
    if (u < cumulative) return last_possible;
  }
  return last_possible;  // u rounded up to the total: the last token that could be drawn
}

}  // namespace nibble
