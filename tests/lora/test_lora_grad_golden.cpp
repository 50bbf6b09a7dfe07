// LoRA gradients of the whole model against PyTorch autograd through PEFT (tests/golden/lora_grad/,
// made by tests/golden/make_lora_grad_golden.py). Compiled twice: on the CPU backend, and (label
// gpu, NIBBLE_TEST_DEVICE_CUDA) on the CUDA backend.
//
// Bounds:
// - fp32 base, fp32 compute: both sides are fp32 throughout and differ only in summation order
//   (BLAS blocking, softmax and norm reductions) along a ~25-op chain; 1e-4 relative per tensor
//   is ~1000 fp32 ulps of headroom for that, and far below what any wrong term would give (a
//   missing scaling, a transposed product, a wrong mask: O(1)).
// - NF4 + DQ base, bf16 compute (QLoRA): bf16 rounds at each op on both sides, differently, so
//   neither equals the truth (the same 4-bit weights in fp32). nibble must be no further from it
//   than 2x transformers + PEFT + bitsandbytes is, per tensor.
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nibble/backend/backend.h"
#include "nibble/io/safetensors.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/model/llama.h"
#include "nibble/model/llama_training.h"

using namespace nibble;

namespace {

#ifdef NIBBLE_TEST_DEVICE_CUDA
constexpr Device kDevice = Device::cuda;
#else
constexpr Device kDevice = Device::cpu;
#endif

std::string golden_dir() { return std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/lora_grad"; }
std::string base_dir() { return std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/forward/llama3"; }

struct Golden {
  nlohmann::json header;
  std::unique_ptr<SafetensorsFile> grads;
  bool has(const std::string& run) const { return header["losses"].contains(run); }
};

std::unique_ptr<Golden> load_golden() {
  std::ifstream in(golden_dir() + "/header.json");
  if (!in) return nullptr;
  auto g = std::make_unique<Golden>();
  in >> g->header;
  g->grads = std::make_unique<SafetensorsFile>(SafetensorsFile::open(golden_dir() + "/grads.safetensors"));
  return g;
}

// transformers' unshifted labels -> nibble's shifted ones: label t predicts token t + 1.
Batch batch_of(const nlohmann::json& header) {
  Batch b;
  b.rows = static_cast<int64_t>(header["ids"].size());
  b.seq_length = static_cast<int64_t>(header["ids"][0].size());
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t t = 0; t < b.seq_length; ++t) {
      b.input_ids.push_back(header["ids"][r][t].get<int32_t>());
      b.labels.push_back(t + 1 < b.seq_length ? header["labels"][r][t + 1].get<int32_t>() : kIgnoreIndex);
      b.positions.push_back(static_cast<int32_t>(t));
      b.sequence_ids.push_back(0);
    }
  }
  for (int32_t l : b.labels) b.target_tokens += l != kIgnoreIndex;
  return b;
}

std::vector<double> values(const Tensor& t) {
  const Tensor f = t.device() == Device::cpu ? t : t.to(Device::cpu);
  return std::vector<double>(f.data_as<float>(), f.data_as<float>() + f.numel());
}

double distance(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(d);
}

double norm(const std::vector<double>& a) { return distance(a, std::vector<double>(a.size(), 0.0)); }

struct TrainingRun {
  double loss = 0;
  std::map<std::string, std::vector<double>> grads;  // by the adapter file's tensor names
};

// nibble's loss and gradients for the golden batch on `model_dir` with the golden adapter.
TrainingRun nibble_run(const Golden& golden, const std::string& model_dir, Backend& backend) {
  LlamaModel model = LlamaModel::load(model_dir, backend);
  LoraAdapter adapter = lora_load_peft(golden_dir() + "/adapter", model_shape_of(model.hyper(), model_dir));
  lora_attach(model, adapter);
  LlamaTraining training(model, TrainingOptions{});
  const Batch batch = batch_of(golden.header);
  const MicroBatchLoss loss = training.forward_backward(batch, 1.0f / static_cast<float>(batch.target_tokens), 0);
  TrainingRun run;
  run.loss = loss.loss_sum / static_cast<double>(loss.target_tokens);
  for (const LoraLinear& l : adapter.linears) {
    const LlamaLora& lora = *model.find_linear(l.target.module)->lora;
    run.grads[l.target.module + ".lora_A.weight"] = values(lora.grad_a);
    run.grads[l.target.module + ".lora_B.weight"] = values(lora.grad_b);
  }
  return run;
}

class LoraGradGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    golden_ = load_golden();
    if (!golden_) GTEST_SKIP() << "no golden data in " << golden_dir() << " (run make_lora_grad_golden.py)";
    backend_ = make_backend(kDevice);
  }
  std::vector<double> golden(const std::string& run, const std::string& name) const {
    return values(golden_->grads->tensor(run + "." + name));
  }

  std::unique_ptr<Golden> golden_;
  std::unique_ptr<Backend> backend_;
};

TEST_F(LoraGradGolden, Fp32MatchesPeft) {
  const TrainingRun run = nibble_run(*golden_, base_dir() + "/model", *backend_);
  ASSERT_EQ(run.grads.size(), 28u);  // 2 layers x 7 projections x (A, B)
  EXPECT_NEAR(run.loss, golden_->header["losses"]["fp32"].get<double>(), 1e-5);
  for (const auto& [name, ours] : run.grads) {
    const std::vector<double> theirs = golden("fp32", name);
    ASSERT_EQ(ours.size(), theirs.size()) << name;
    EXPECT_LE(distance(ours, theirs), 1e-4 * norm(theirs)) << name;
  }
}

TEST_F(LoraGradGolden, Nf4NoFurtherFromTheTruthThanPeft) {
  if (!golden_->has("nf4")) GTEST_SKIP() << "the golden data has no bitsandbytes part (made without a GPU)";
  const TrainingRun run = nibble_run(*golden_, base_dir() + "/model_nf4", *backend_);
  const double truth_loss = golden_->header["losses"]["nf4_fp32"].get<double>();
  const double peft_loss = golden_->header["losses"]["nf4"].get<double>();
  EXPECT_LE(std::abs(run.loss - truth_loss), 2 * std::abs(peft_loss - truth_loss) + 1e-6);
  for (const auto& [name, ours] : run.grads) {
    const std::vector<double> truth = golden("nf4_fp32", name), peft = golden("nf4", name);
    const double peft_error = distance(peft, truth), our_error = distance(ours, truth);
    EXPECT_LE(our_error, 2 * peft_error) << name << ": |nibble - truth| / |truth| = " << our_error / norm(truth)
                                         << ", PEFT's " << peft_error / norm(truth);
  }
}

}  // namespace
