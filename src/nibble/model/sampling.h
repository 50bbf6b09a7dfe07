// Choosing the next token from a row of logits, as transformers' generate() does: the
// repetition penalty first, then temperature, top-k and top-p (its processor order), then
// greedy argmax or a draw from the softmax with a seeded generator.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace nibble {

struct SamplingOptions {
  float temperature = 0.0f;         // 0: greedy (argmax); otherwise logits / temperature
  int64_t top_k = 0;                // 0: off; else keep the k largest logits (ties with the k-th kept)
  float top_p = 1.0f;               // 1: off; else the smallest set of tokens with probability >= top_p
  float repetition_penalty = 1.0f;  // 1: off; HF's definition, see apply_repetition_penalty
  uint64_t seed = 0;
};

// Throws nibble::Error naming the option when a value is out of range (temperature < 0,
// top_k < 0, top_p outside (0, 1], repetition_penalty <= 0).
void check_sampling_options(const SamplingOptions& options);

// HF's RepetitionPenaltyLogitsProcessor: for every distinct token in `history`, a positive
// logit is divided by `penalty` and a negative one multiplied by it. logits[V], in place.
void apply_repetition_penalty(std::vector<float>& logits, const std::vector<int32_t>& history, float penalty);
// HF's TopKLogitsWarper: logits below the k-th largest become -inf.
void apply_top_k(std::vector<float>& logits, int64_t k);
// HF's TopPLogitsWarper: sort ascending, and remove the tokens whose cumulative softmax
// probability is <= 1 - top_p; the most likely token always stays.
void apply_top_p(std::vector<float>& logits, float top_p);
// First index of the largest logit (torch.argmax's choice among ties).
int32_t argmax(const std::vector<float>& logits);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  const SamplingOptions& options() const { return options_; }
  // The next token from logits[V] (copied: the caller's row is not changed). history: the
  // prompt and the tokens generated so far, for the repetition penalty.
  int32_t next(const float* logits, int64_t V, const std::vector<int32_t>& history);
  // A uniform double in [0, 1) from the seeded generator (53 random bits): the same sequence
  // on every platform, which std::uniform_real_distribution does not promise.
  double uniform();

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace nibble
