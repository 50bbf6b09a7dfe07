// Batch-1 greedy decode of a Llama-2-7B-shaped model with random NF4 + DQ weights (made on the
// GPU from random bf16 draws, no files), bf16 compute: a 16-token prompt, then 128 new tokens.
// Reports tokens/s of the decode steps (recorded and replayed, the default; and issued op by op,
// set_record_decode(false), for comparison) and the memory-bandwidth limit of this model:
//   limit = (device-to-device copy bandwidth, read + write bytes, measured in this run)
//           / (bytes a decode step must read: 4-bit codes and constants of the block linears,
//              lm_head, norms, one embedding row, and the KV cache at the mean context length).
// Then where a step's GPU time goes: a second model on an OpTimer backend (bench/train) times each
// op of 8 decode steps issued op by op with CUDA events around it; the events serialize the ops,
// so the parts add up to more than a replayed step takes.
// Usage: bench_decode OUT.jsonl   (appends one JSON line; also prints a summary)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/train/op_timer.h"
#include "nibble/core/cuda_check.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"

using namespace nibble;

namespace {

constexpr int64_t kPromptTokens = 16;
constexpr int64_t kNewTokens = 128;

LlamaHyper llama2_7b() {
  LlamaHyper h;
  h.model_type = "llama";
  h.hidden = 4096;
  h.intermediate = 11008;
  h.layers = 32;
  h.heads = 32;
  h.kv_heads = 32;
  h.head_dim = 128;
  h.vocab = 32000;
  h.max_positions = 4096;
  h.rms_norm_eps = 1e-5;
  return h;
}

// Read + write bytes per second of a 1 GiB device-to-device cudaMemcpy, best of 10.
double copy_bandwidth() {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  NIBBLE_CUDA_CHECK(cudaMalloc(&a, bytes));
  NIBBLE_CUDA_CHECK(cudaMalloc(&b, bytes));
  cudaEvent_t start, stop;
  NIBBLE_CUDA_CHECK(cudaEventCreate(&start));
  NIBBLE_CUDA_CHECK(cudaEventCreate(&stop));
  float best = 1e30f;
  for (int i = 0; i < 11; ++i) {
    NIBBLE_CUDA_CHECK(cudaEventRecord(start));
    NIBBLE_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    NIBBLE_CUDA_CHECK(cudaEventRecord(stop));
    NIBBLE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    NIBBLE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i > 0) best = std::min(best, ms);  // the first is warm-up
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * static_cast<double>(bytes) / (best * 1e-3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bench_decode OUT.jsonl\n");
    return 2;
  }
  try {
    const double bandwidth = copy_bandwidth();
    std::unique_ptr<Backend> backend = make_backend(Device::cuda);
    const LlamaHyper h = llama2_7b();
    LlamaModel model = LlamaModel::random(h, *backend, DType::bf16, QuantConfig{QuantType::nf4, 64, true}, 1);

    std::vector<int32_t> prompt;
    for (int64_t t = 0; t < kPromptTokens; ++t) prompt.push_back(static_cast<int32_t>(100 + 37 * t));
    GenerateOptions options;  // greedy, no EOS: every run makes exactly kNewTokens tokens
    options.max_new_tokens = kNewTokens;
    KvCache cache = model.make_cache(kPromptTokens + kNewTokens);
    generate(model, cache, prompt, options);  // warm-up: cuBLAS heuristics, allocations, the recording
    cache.reset();
    GenerateResult r = generate(model, cache, prompt, options);
    const double tokens_per_s = static_cast<double>(kNewTokens - 1) / r.decode_seconds;
    const bool replayed = model.decode_replayed();
    model.set_record_decode(false);
    cache.reset();
    GenerateResult op_by_op = generate(model, cache, prompt, options);
    const double op_by_op_tokens_per_s = static_cast<double>(kNewTokens - 1) / op_by_op.decode_seconds;
    const bool same_tokens = op_by_op.tokens == r.tokens;

    // Bytes one decode step reads at best: every weight except the embedding table (one row of
    // it), and K and V of every layer at the mean context length of the decode steps.
    const double embed_bytes = static_cast<double>(h.vocab * h.hidden * 2);
    const double mean_context = kPromptTokens + kNewTokens / 2.0;
    const double kv_bytes = 2.0 * h.layers * mean_context * h.kv_heads * h.head_dim * 2;
    const double bytes_per_token =
        static_cast<double>(model.weight_bytes()) - embed_bytes + h.hidden * 2 + kv_bytes;
    const double limit = bandwidth / bytes_per_token;

    cudaDeviceProp prop{};
    NIBBLE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    nlohmann::ordered_json line = {
        {"bench", "decode"}, {"impl", "nibble"}, {"date", date}, {"device", prop.name},
        {"model", "llama-2-7b shape, random weights"}, {"quant", "nf4+dq"}, {"compute_dtype", "bf16"},
        {"prompt_tokens", kPromptTokens}, {"new_tokens", kNewTokens},
        {"prefill_s", r.prefill_seconds}, {"decode_s", r.decode_seconds}, {"tokens_per_s", tokens_per_s},
        {"replayed", replayed}, {"op_by_op_tokens_per_s", op_by_op_tokens_per_s},
        {"op_by_op_same_tokens", same_tokens},
        {"bytes_per_token", bytes_per_token}, {"copy_bandwidth_gbs", bandwidth / 1e9},
        {"limit_tokens_per_s", limit}, {"fraction_of_limit", tokens_per_s / limit}};

    // The breakdown, on a second model with the same shape and seed.
    bench::OpTimer timer(*backend);
    LlamaModel timed = LlamaModel::random(h, timer, DType::bf16, QuantConfig{QuantType::nf4, 64, true}, 1);
    timed.set_record_decode(false);
    KvCache timed_cache = timed.make_cache(kPromptTokens + kNewTokens);
    timed.forward(prompt, timed_cache, /*last_only=*/true);
    timed.forward({7}, timed_cache, /*last_only=*/true);
    timer.reset();
    constexpr int kTimedSteps = 8;
    for (int i = 0; i < kTimedSteps; ++i) timed.forward({100 + i}, timed_cache, /*last_only=*/true);
    std::vector<std::pair<double, std::string>> parts;
    double total_ms = 0;
    for (const auto& [op, ms] : timer.milliseconds()) {
      parts.emplace_back(ms / kTimedSteps, op);
      total_ms += ms / kTimedSteps;
    }
    std::sort(parts.rbegin(), parts.rend());
    nlohmann::ordered_json breakdown;
    for (const auto& [ms, op] : parts) breakdown[op] = ms;
    line["op_ms_per_step"] = breakdown;

    std::ofstream(argv[1], std::ios::app) << line.dump() << "\n";
    fmt::print("GPU time per decode step by op (events around each op, {:.3f} ms in all):\n", total_ms);
    for (const auto& [ms, op] : parts) fmt::print("  {:<28} {:8.3f} ms\n", op, ms);
    fmt::print("decode llama-2-7b NF4+DQ bf16: {:.1f} tokens/s; limit {:.1f} tokens/s ({:.2f} GB/token at "
               "{:.0f} GB/s copy bandwidth): {:.1f} % of the limit{}; op by op {:.1f} tokens/s ({} tokens)\n",
               tokens_per_s, limit, bytes_per_token / 1e9, bandwidth / 1e9, 100.0 * tokens_per_s / limit,
               replayed ? " (recorded steps)" : " (NOT replayed: recording failed)", op_by_op_tokens_per_s,
               same_tokens ? "same" : "DIFFERENT");
    if (!same_tokens) {
      std::fprintf(stderr, "bench_decode: recorded and op-by-op decoding chose different tokens\n");
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decode: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
