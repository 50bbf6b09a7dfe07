// QLoRA training steps at real shapes, with random weights made on the GPU (no files): the
// Llama-2-7B / Llama-3-8B / Llama-2-13B shapes in NF4 + DQ, bf16 compute, LoRA on all seven
// block linears, gradient checkpointing, paged AdamW 32-bit: the peer's job
// (bench/peers/train_step_peer.py) step for step.
//
// Reports tokens/s over the timed steps, the fraction of the 4N-FLOP limit (forward 2N + input
// gradient 2N per token for N parameters, at the bf16 GEMM rate measured in this run), peak GPU
// memory (nibble's allocator ledger, and the driver's used memory), what `nibble memory`
// predicts for the same run, and the GPU time per backend op over one step.
//
// Usage: bench_train_step OUT.jsonl [SHAPE=llama2-7b] [SEQ=2048] [BATCH=1] [STEPS=4]
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/train/op_timer.h"
#include "nibble/core/cuda_check.h"
#include "nibble/core/memory.h"
#include "nibble/lora/lora_adapter.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/model/llama.h"
#include "nibble/model/llama_training.h"
#include "nibble/model/memory_plan.h"
#include "nibble/optim/optimizer.h"
#include "nibble/train/train_step.h"

using namespace nibble;

namespace {

LlamaHyper hyper_of(const std::string& name) {
  const std::optional<ModelShape> shape = model_preset(name);
  NIBBLE_CHECK(shape.has_value(), "unknown shape {}", name);
  LlamaHyper h;
  h.model_type = "llama";
  h.hidden = shape->hidden;
  h.intermediate = shape->intermediate;
  h.layers = shape->layers;
  h.heads = shape->heads;
  h.kv_heads = shape->kv_heads;
  h.head_dim = shape->head_dim;
  h.vocab = shape->vocab;
  h.max_positions = 8192;
  h.rms_norm_eps = 1e-5;
  h.tied_embeddings = shape->tied_embeddings;
  h.rope.theta = name.rfind("llama3", 0) == 0 ? 500000.0 : 10000.0;
  return h;
}

// bf16 GEMM FLOP/s at 8192^3 through the backend's own linear (cuBLAS), best of 10.
double gemm_flops(Backend& backend) {
  const int64_t n = 8192;
  Tensor x = Tensor::zeros({n, n}, DType::bf16, Device::cuda), w = Tensor::zeros({n, n}, DType::bf16, Device::cuda);
  Tensor y = Tensor::empty({n, n}, DType::bf16, Device::cuda);
  double best = 1e30;
  for (int i = 0; i < 11; ++i) {
    backend.synchronize();
    const auto start = std::chrono::steady_clock::now();
    backend.linear_forward(y, x, w, nullptr);
    backend.synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) best = std::min(best, s);
  }
  return 2.0 * n * n * n / best;
}

int64_t driver_used_bytes() {
  size_t free = 0, total = 0;
  NIBBLE_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return static_cast<int64_t>(total - free);
}

Batch random_batch(int64_t rows, int64_t seq, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Batch b;
  b.rows = rows;
  b.seq_length = seq;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int32_t> ids(static_cast<size_t>(seq));
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
    for (int64_t t = 0; t < seq; ++t) {
      b.input_ids.push_back(ids[t]);
      b.labels.push_back(t + 1 < seq ? ids[t + 1] : kIgnoreIndex);
      b.positions.push_back(static_cast<int32_t>(t));
      b.sequence_ids.push_back(0);
    }
  }
  for (int32_t l : b.labels) b.target_tokens += l != kIgnoreIndex;
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_train_step OUT.jsonl [SHAPE=llama2-7b] [SEQ=2048] [BATCH=1] [STEPS=4]\n");
    return 2;
  }
  const std::string shape_name = argc > 2 ? argv[2] : "llama2-7b";
  const int64_t seq = argc > 3 ? std::stoll(argv[3]) : 2048;
  const int64_t batch = argc > 4 ? std::stoll(argv[4]) : 1;
  const int64_t steps = argc > 5 ? std::stoll(argv[5]) : 4;
  constexpr int64_t kRank = 64;
  try {
    std::unique_ptr<Backend> cuda = make_backend(Device::cuda);
    bench::OpTimer timer(*cuda);
    const double flops = gemm_flops(*cuda);
    const LlamaHyper h = hyper_of(shape_name);
    LlamaModel model = LlamaModel::random(h, timer, DType::bf16, QuantConfig{QuantType::nf4, 64, true}, 1);
    const ModelShape shape = model_shape_of(h, shape_name);
    LoraConfig lora;
    lora.r = kRank;
    lora.lora_alpha = 16;
    LoraAdapter adapter = lora_init(lora, shape, 1);
    lora_attach(model, adapter);
    LlamaTraining training(model, TrainingOptions{});
    std::vector<OptimParam> params;
    for (LlamaLinear* l : model.block_linears()) {
      params.push_back({l->name + ".lora_A", l->lora->a, l->lora->grad_a});
      params.push_back({l->name + ".lora_B", l->lora->b, l->lora->grad_b});
    }
    AdamwOptimizer optimizer(AdamwVariant::paged_adamw_32bit, AdamwHyper{}, params);
    StepSchedule schedule;
    schedule.total_steps = steps + 1;
    StepRunner runner(training, optimizer, params, schedule);
    const Batch b = random_batch(batch, seq, h.vocab, 7);

    runner.run({b}, 0, 0);  // warm-up: cuBLAS heuristics, the allocator's cache, paged states
    timer.milliseconds();
    timer.reset();
    device_memory_ledger().reset_peaks();
    int64_t driver_peak = driver_used_bytes();
    const auto start = std::chrono::steady_clock::now();
    std::map<std::string, double> breakdown;
    for (int64_t s = 1; s <= steps; ++s) {
      runner.run({b}, s, static_cast<uint64_t>(s));
      driver_peak = std::max(driver_peak, driver_used_bytes());
      if (s == 1) {
        breakdown = timer.milliseconds();
      }
      timer.reset();
    }
    cuda->synchronize();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double tokens_per_s = static_cast<double>(steps * batch * seq) / seconds;
    const double n_params = static_cast<double>(quantized_parameter_count(shape) + unquantized_parameter_count(shape));
    const double limit = flops / (4.0 * n_params);

    TrainShape train;
    train.seq_len = seq;
    train.batch = batch;
    train.lora_rank = kRank;
    const MemoryPlan plan = plan_memory(shape, train);

    cudaDeviceProp prop{};
    NIBBLE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    nlohmann::ordered_json ops = nlohmann::ordered_json::object();
    double op_total = 0;
    for (const auto& [op, ms] : breakdown) op_total += ms;
    for (const auto& [op, ms] : breakdown) ops[op] = ms;
    nlohmann::ordered_json line = {
        {"bench", "train_step"}, {"impl", "nibble"}, {"date", date}, {"device", prop.name},
        {"model", shape_name + " shape, random weights"}, {"quant", "nf4+dq"}, {"compute_dtype", "bf16"},
        {"seq", seq}, {"batch", batch}, {"lora_rank", kRank}, {"gradient_checkpointing", true},
        {"optim", "paged_adamw_32bit"}, {"steps", steps}, {"seconds", seconds}, {"tokens_per_s", tokens_per_s},
        {"gemm_tflops", flops / 1e12}, {"limit_tokens_per_s", limit}, {"fraction_of_limit", tokens_per_s / limit},
        {"peak_ledger_gib", device_memory_ledger().peak_total() / 1073741824.0},
        {"peak_driver_gib", driver_peak / 1073741824.0}, {"predicted_gib", plan.gpu_total / 1073741824.0},
        {"op_ms_one_step", ops}};
    std::ofstream(argv[1], std::ios::app) << line.dump() << "\n";
    fmt::print("train step {} seq {} batch {}: {:.0f} tokens/s ({:.1f} % of the 4N limit {:.0f} at {:.0f} TFLOP/s); "
               "peak {:.2f} GiB ledger, {:.2f} GiB driver; predicted {:.2f} GiB\n",
               shape_name, seq, batch, tokens_per_s, 100 * tokens_per_s / limit, limit, flops / 1e12,
               device_memory_ledger().peak_total() / 1073741824.0, driver_peak / 1073741824.0,
               plan.gpu_total / 1073741824.0);
    std::vector<std::pair<double, std::string>> sorted;
    for (const auto& [op, ms] : breakdown) sorted.emplace_back(ms, op);
    std::sort(sorted.rbegin(), sorted.rend());
    for (const auto& [ms, op] : sorted) fmt::print("  {:<26} {:9.1f} ms  {:5.1f} %\n", op, ms, 100 * ms / op_total);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
