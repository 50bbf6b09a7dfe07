// LlamaTraining on a tiny fp32 model on the CPU: the LoRA gradients of the whole model against
// central finite differences of its own loss, checkpointing changing nothing, packed sequences
// equal to separate rows, dropout masks drawn again identically, and the unmerged adapter in the
// inference forward equal to the merged weight.
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "nibble/backend/backend.h"
#include "nibble/model/llama.h"
#include "nibble/model/llama_training.h"
#include "tests/support/tiny_model.h"

using namespace nibble;

namespace {

constexpr int32_t kIgnore = kIgnoreIndex;

Tensor random_f32(const Shape& shape, float stddev, std::mt19937_64& rng) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::normal_distribution<float> normal(0.0f, stddev);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(rng);
  return t;
}

// A row of two packed sequences (5 and 4 tokens) and 2 padding tokens.
Batch packed_batch() {
  Batch b;
  b.rows = 1;
  b.seq_length = 11;
  b.input_ids = {3, 17, 29, 4, 8, 11, 12, 30, 2, 0, 0};
  b.labels = {17, 29, 4, 8, kIgnore, kIgnore, 30, 2, kIgnore, kIgnore, kIgnore};
  b.positions = {0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1};
  b.sequence_ids = {0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1};
  return b;
}

// The same two sequences, one per row, padded to 5.
Batch padded_batch() {
  Batch b;
  b.rows = 2;
  b.seq_length = 5;
  b.input_ids = {3, 17, 29, 4, 8, 11, 12, 30, 2, 0};
  b.labels = {17, 29, 4, 8, kIgnore, kIgnore, 30, 2, kIgnore, kIgnore};
  b.positions = {0, 1, 2, 3, 4, 0, 1, 2, 3, 0};
  b.sequence_ids = {0, 0, 0, 0, 0, 0, 0, 0, 0, -1};
  return b;
}

int64_t targets(const Batch& b) {
  int64_t n = 0;
  for (int32_t l : b.labels) n += l != kIgnore;
  return n;
}

class LlamaTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nibble::testing::TinyModelSpec spec;
    spec.hidden = 32;
    spec.intermediate = 48;
    spec.heads = 4;
    spec.kv_heads = 2;
    spec.vocab = 40;
    spec.dtype = DType::f32;
    spec.stddev = 0.2f;
    nibble::testing::write_tiny_llama(dir_.path(), spec);
    backend_ = make_cpu_backend();
    model_ = std::make_unique<LlamaModel>(LlamaModel::load(dir_.path(), *backend_));
  }

  // Random A and B (B non-zero, unlike a fresh adapter, so every gradient is non-trivial).
  void attach_adapters(float dropout) {
    std::mt19937_64 rng(5);
    for (LlamaLinear* l : model_->block_linears()) {
      LlamaLora lora;
      lora.a = random_f32({4, l->in}, 0.3f, rng);
      lora.b = random_f32({l->out, 4}, 0.3f, rng);
      lora.scaling = 2.0f;
      lora.dropout = dropout;
      l->lora = lora;
    }
  }

  std::vector<Tensor> parameters() {
    std::vector<Tensor> p;
    for (LlamaLinear* l : model_->block_linears()) {
      p.push_back(l->lora->a);
      p.push_back(l->lora->b);
    }
    return p;
  }

  static std::vector<std::vector<float>> copy(const std::vector<Tensor>& ts) {
    std::vector<std::vector<float>> out;
    for (const Tensor& t : ts) out.emplace_back(t.data_as<float>(), t.data_as<float>() + t.numel());
    return out;
  }

  std::vector<std::vector<float>> gradients(const Batch& batch, const TrainingOptions& options, double* loss = nullptr) {
    LlamaTraining training(*model_, options);
    MicroBatchLoss l = training.forward_backward(batch, 1.0f / static_cast<float>(targets(batch)), 7);
    if (loss != nullptr) *loss = l.loss_sum;
    return copy(training.gradients());
  }

  nibble::testing::TempDir dir_{"nibble-training"};
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
};

// Along a random direction u per adapter tensor (normal entries, |u| ~ 6..16), (L(p + h u) -
// L(p - h u)) / 2h against g . u, with L the mean token loss of forward_backward (dropout masks
// fixed by the micro-step). fp32 loss values of ~3.7 carry ~4e-7 absolute rounding: over 2h =
// 4e-3 that is ~1e-4 of noise (the absolute term) on derivatives of order 0.3..3; the h^2
// truncation term stays under ~1e-3 relative at this h (at h = 1e-2 it reached 2 %).
void check_finite_differences(const Batch& batch, const TrainingOptions& options,
                              const std::vector<std::vector<float>>& grads, std::vector<Tensor> params,
                              LlamaModel& model) {
  const double h = 1e-3;
  const float scale = 1.0f / static_cast<float>(targets(batch));
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor& p = params[i];
    std::vector<float> u(static_cast<size_t>(p.numel()));
    for (float& x : u) x = normal(rng);
    const std::vector<float> original(p.data_as<float>(), p.data_as<float>() + p.numel());
    auto loss_at = [&](double step) {
      for (int64_t j = 0; j < p.numel(); ++j) p.data_as<float>()[j] = static_cast<float>(original[j] + step * u[j]);
      LlamaTraining training(model, options);
      return training.forward_backward(batch, scale, 7).loss_sum * scale;
    };
    const double fd = (loss_at(h) - loss_at(-h)) / (2 * h);
    for (int64_t j = 0; j < p.numel(); ++j) p.data_as<float>()[j] = original[j];
    double analytic = 0.0;
    for (size_t j = 0; j < u.size(); ++j) analytic += static_cast<double>(grads[i][j]) * u[j];
    EXPECT_NEAR(fd, analytic, 2e-3 * std::max(1.0, std::abs(analytic)) + 1e-4)
        << "adapter tensor " << i << " (" << (i % 2 ? "B" : "A") << " of projection " << i / 2 << ")";
  }
}

TEST_F(LlamaTrainingTest, GradientsMatchFiniteDifferences) {
  attach_adapters(0.0f);
  const Batch batch = packed_batch();
  TrainingOptions options;
  const auto grads = gradients(batch, options);
  check_finite_differences(batch, options, grads, parameters(), *model_);
}

TEST_F(LlamaTrainingTest, GradientsWithDropoutMatchFiniteDifferences) {
  attach_adapters(0.25f);
  const Batch batch = packed_batch();
  TrainingOptions options;
  options.dropout_seed = 99;
  const auto grads = gradients(batch, options);
  check_finite_differences(batch, options, grads, parameters(), *model_);
}

// Recomputing a block from its input must give the same activations, dropout masks included, so
// the gradients are bitwise those of the run that kept everything.
TEST_F(LlamaTrainingTest, CheckpointingChangesNothing) {
  attach_adapters(0.1f);
  TrainingOptions with, without;
  with.gradient_checkpointing = true;
  without.gradient_checkpointing = false;
  double loss_with = 0, loss_without = 0;
  EXPECT_EQ(gradients(packed_batch(), with, &loss_with), gradients(packed_batch(), without, &loss_without));
  EXPECT_EQ(loss_with, loss_without);
}

// The logits in chunks of rows are the same products; only the BLAS may sum them in another
// order for another number of rows (OpenBLAS picks kernels and thread splits by size: bitwise
// equal on 2 cores, not on the 16-core GPU machine), so the bound is fp32 rounding.
TEST_F(LlamaTrainingTest, LossChunksChangeOnlyRounding) {
  attach_adapters(0.0f);
  TrainingOptions whole, chunked;
  chunked.loss_chunk_tokens = 3;
  double loss_whole = 0, loss_chunked = 0;
  const auto a = gradients(packed_batch(), whole, &loss_whole);
  const auto b = gradients(packed_batch(), chunked, &loss_chunked);
  EXPECT_NEAR(loss_whole, loss_chunked, 1e-6 * std::abs(loss_whole));
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = 0, norm = 0;
    for (size_t j = 0; j < a[i].size(); ++j) {
      diff += std::pow(a[i][j] - b[i][j], 2);
      norm += std::pow(a[i][j], 2);
    }
    EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm)) << "adapter tensor " << i;
  }
}

// Packing must not let one sequence see another: the packed row and two padded rows hold the
// same sequences, so losses and gradients agree to fp32 rounding of differently ordered sums.
TEST_F(LlamaTrainingTest, PackedEqualsSeparateRows) {
  attach_adapters(0.0f);
  TrainingOptions options;
  double packed_loss = 0, padded_loss = 0;
  const auto packed = gradients(packed_batch(), options, &packed_loss);
  const auto padded = gradients(padded_batch(), options, &padded_loss);
  EXPECT_NEAR(packed_loss, padded_loss, 1e-5 * std::abs(packed_loss));
  for (size_t i = 0; i < packed.size(); ++i) {
    double diff = 0, norm = 0;
    for (size_t j = 0; j < packed[i].size(); ++j) {
      diff += std::pow(packed[i][j] - padded[i][j], 2);
      norm += std::pow(padded[i][j], 2);
    }
    EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm)) << "adapter tensor " << i;
  }
}

TEST_F(LlamaTrainingTest, DropoutMasksDependOnTheMicroStep) {
  attach_adapters(0.25f);
  LlamaTraining training(*model_, TrainingOptions{});
  const Batch batch = packed_batch();
  const double a = training.forward_backward(batch, 1.0f, 1).loss_sum;
  const double b = training.forward_backward(batch, 1.0f, 1).loss_sum;
  const double c = training.forward_backward(batch, 1.0f, 2).loss_sum;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const double evaluation = training.evaluate(batch).loss_sum;  // no dropout
  EXPECT_NE(evaluation, a);
}

TEST_F(LlamaTrainingTest, EvaluateMatchesTheInferenceForward) {
  attach_adapters(0.0f);
  const Batch batch = padded_batch();
  LlamaTraining training(*model_, TrainingOptions{});
  const MicroBatchLoss loss = training.evaluate(batch);
  EXPECT_EQ(loss.target_tokens, 6);
  // The first row through the cached inference forward: its logits give the same token losses.
  KvCache cache = model_->make_cache(5);
  const std::vector<int32_t> ids(batch.input_ids.begin(), batch.input_ids.begin() + 5);
  Tensor logits = model_->forward(ids, cache);
  double row_loss = 0;
  for (int t = 0; t < 4; ++t) {
    const float* row = logits.data_as<float>() + t * 40;
    double max = row[0], sum = 0;
    for (int v = 0; v < 40; ++v) max = std::max<double>(max, row[v]);
    for (int v = 0; v < 40; ++v) sum += std::exp(row[v] - max);
    row_loss += max + std::log(sum) - row[batch.labels[t]];
  }
  Batch first_row = batch;
  first_row.rows = 1;
  for (auto* field : {&first_row.input_ids, &first_row.labels, &first_row.positions, &first_row.sequence_ids})
    field->resize(5);
  EXPECT_NEAR(training.evaluate(first_row).loss_sum, row_loss, 1e-5 * row_loss);
}

// The inference forward applies the adapter unmerged; with fp32 compute that equals the merged
// weight W + scaling * B A to fp32 rounding.
TEST_F(LlamaTrainingTest, UnmergedAdapterEqualsMergedWeight) {
  attach_adapters(0.0f);
  const std::vector<int32_t> ids = {3, 17, 29, 4, 8};
  KvCache cache = model_->make_cache(5);
  Tensor with_adapter = model_->forward(ids, cache);
  for (LlamaLinear* l : model_->block_linears()) {
    const LlamaLora& lora = *l->lora;
    l->weight = l->weight.to(Device::cpu);  // a copy: the loaded one may be a view of the file
    float* w = l->weight.data_as<float>();
    const int64_t R = lora.rank();
    for (int64_t n = 0; n < l->out; ++n)
      for (int64_t k = 0; k < l->in; ++k) {
        double delta = 0;
        for (int64_t r = 0; r < R; ++r)
          delta += double(lora.b.data_as<float>()[n * R + r]) * lora.a.data_as<float>()[r * l->in + k];
        w[n * l->in + k] += static_cast<float>(lora.scaling * delta);
      }
  }
  model_->clear_lora();
  KvCache cache2 = model_->make_cache(5);
  Tensor merged = model_->forward(ids, cache2);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < merged.numel(); ++i) {
    diff += std::pow(double(merged.data_as<float>()[i]) - with_adapter.data_as<float>()[i], 2);
    norm += std::pow(double(merged.data_as<float>()[i]), 2);
  }
  EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm));
}

}  // namespace
