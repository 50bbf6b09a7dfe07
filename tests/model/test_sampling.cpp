// Sampling on fixed logits: each processor as transformers defines it, and seeded draws.
// Expected values are worked out by hand from the definitions (exact: only comparisons,
// products by the penalty and exact -inf masks are involved).
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "nibble/model/sampling.h"

using namespace nibble;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  std::vector<float> x = {2.0f, -2.0f, 1.0f, 0.5f};
  apply_repetition_penalty(x, {0, 1, 1, 3}, 2.0f);  // token 1 twice: penalized once (HF gathers a set)
  EXPECT_EQ(x, (std::vector<float>{1.0f, -4.0f, 1.0f, 0.25f}));
}

TEST(Sampling, TopKKeepsTiesWithTheKth) {
  std::vector<float> x = {0.1f, 3.0f, 2.0f, 2.0f, -1.0f};
  apply_top_k(x, 2);
  EXPECT_EQ(x, (std::vector<float>{-kInf, 3.0f, 2.0f, 2.0f, -kInf}));
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their logs).
  std::vector<float> x = {std::log(0.5f), std::log(0.25f), std::log(0.125f), std::log(0.125f)};
  std::vector<float> y = x;
  apply_top_p(y, 0.7f);  // ascending cumulative 0.125, 0.25, 0.5: removed while <= 0.3
  EXPECT_EQ(y[0], x[0]);
  EXPECT_EQ(y[1], x[1]);
  EXPECT_EQ(y[2], -kInf);
  EXPECT_EQ(y[3], -kInf);
  std::vector<float> z = x;
  apply_top_p(z, 0.01f);  // the most likely token always stays
  EXPECT_EQ(z[0], x[0]);
  EXPECT_EQ(z[1], -kInf);
}

TEST(Sampling, GreedyIsArgmaxAfterThePenalty) {
  Sampler s(SamplingOptions{});
  std::vector<float> x = {1.0f, 3.0f, 2.5f};
  EXPECT_EQ(s.next(x.data(), 3, {}), 1);
  Sampler penalized(SamplingOptions{0.0f, 0, 1.0f, 1.5f, 0});
  EXPECT_EQ(penalized.next(x.data(), 3, {1}), 2);  // 3 / 1.5 = 2 < 2.5
  EXPECT_EQ(argmax({1.0f, 4.0f, 4.0f}), 1);         // first of equal maxima, as torch.argmax
}

TEST(Sampling, SeededDrawsAreReproducibleAndFollowTheDistribution) {
  std::vector<float> x = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingOptions o{1.0f, 0, 1.0f, 1.0f, 42};
  Sampler a(o), b(o);
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    int32_t t = a.next(x.data(), 3, {});
    EXPECT_EQ(t, b.next(x.data(), 3, {}));
    ++counts[t];
  }
  // Binomial standard deviation of a count is sqrt(n p (1 - p)) <= 70 here; allow 5 of them.
  EXPECT_NEAR(counts[0], 0.6 * n, 350);
  EXPECT_NEAR(counts[1], 0.3 * n, 350);
  EXPECT_NEAR(counts[2], 0.1 * n, 350);
}

TEST(Sampling, TopKOneIsGreedyWhateverTheTemperature) {
  std::vector<float> x = {0.0f, 0.1f, -0.2f, 0.05f};
  Sampler s(SamplingOptions{5.0f, 1, 1.0f, 1.0f, 7});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.next(x.data(), 4, {}), 1);
}

TEST(Sampling, BadOptionsNameTheOption) {
  EXPECT_THROW(Sampler(SamplingOptions{-1.0f, 0, 1.0f, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler(SamplingOptions{1.0f, -2, 1.0f, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler(SamplingOptions{1.0f, 0, 0.0f, 1.0f, 0}), Error);
  try {
    Sampler(SamplingOptions{1.0f, 0, 1.0f, 0.0f, 0});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("repetition_penalty"), std::string::npos) << e.what();
  }
}

}  // namespace
