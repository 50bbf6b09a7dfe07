// Benchmarks of quant/ on the GPU:
//  1. NF4 + DQ dequantize to bf16 of 4096x11008 and 8192x28672 weights, in GB/s counting bytes
//     read (packed codes, absmax codes, nested absmax) plus bytes written, next to a
//     device-to-device cudaMemcpy of the output size (read + write) measured in the same run.
//  2. Time to quantize (NF4 + DQ, B = 64) every linear weight of a Llama-2-7B shape on the GPU.
// Timing: CUDA events around each launch, median of many runs, rotating several buffer sets whose
// total exceeds the L2 cache. Prints a table; with a path argument also writes JSON lines there.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "nibble/core/cuda_check.h"
#include "nibble/core/half.h"
#include "nibble/core/tensor.h"
#include "nibble/quant/quant_cuda.h"
#include "nibble/quant/quantize.h"
#include "nibble/quant/sizes.h"

using namespace nibble;

namespace {

constexpr int kRuns = 50;
constexpr int kSets = 4;  // rotated buffer sets

Tensor random_bf16(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor host = Tensor::empty({rows, cols}, DType::bf16);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  bf16_t* p = host.data_as<bf16_t>();
  // A few million draws, tiled, keep setup fast; blocks still see varied data.
  std::vector<bf16_t> pattern(1 << 22);
  for (auto& v : pattern) v = float_to_bf16(normal(rng));
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = pattern[(i * 7919) % pattern.size()];
  return host.to(Device::cuda, MemoryCategory::base_weights);
}

template <typename F>
float median_ms(F&& launch, int runs) {
  cudaEvent_t start, stop;
  NIBBLE_CUDA_CHECK(cudaEventCreate(&start));
  NIBBLE_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) launch(i);  // warm-up
  std::vector<float> times;
  for (int i = 0; i < runs; ++i) {
    NIBBLE_CUDA_CHECK(cudaEventRecord(start));
    launch(i);
    NIBBLE_CUDA_CHECK(cudaEventRecord(stop));
    NIBBLE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    NIBBLE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  NIBBLE_CUDA_CHECK(cudaEventDestroy(start));
  NIBBLE_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}



}  // namespace

int main(int argc, char** argv) {
  try {
    if (!cuda_available()) {
      std::fprintf(stderr, "bench_dequant: no CUDA device visible\n");
      return 1;
    }
    std::vector<std::string> lines;
    cudaDeviceProp prop;
    NIBBLE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, L2 %.0f MiB\n", prop.name, prop.l2CacheSize / 1048576.0);
    std::printf("%-14s %12s %12s %12s %12s %8s\n", "shape", "dequant ms", "dequant GB/s", "memcpy ms", "memcpy GB/s",
                "ratio");
    const int64_t shapes[2][2] = {{4096, 11008}, {8192, 28672}};
    for (const auto& shape : shapes) {
      const int64_t n = shape[0] * shape[1];
      Tensor weight = random_bf16(shape[0], shape[1], 1);
      QuantizedWeight first = quantize_4bit(weight, QuantConfig{QuantType::nf4, 64, true});
      weight = Tensor();
      std::vector<QuantizedWeight> sets(kSets, first);
      std::vector<Tensor> outs;
      for (int s = 0; s < kSets; ++s) {
        if (s > 0) {
          sets[s].packed = first.packed.to(Device::cuda, MemoryCategory::base_weights);
          sets[s].absmax = first.absmax.to(Device::cuda, MemoryCategory::quant_constants);
          sets[s].nested_absmax = first.nested_absmax.to(Device::cuda, MemoryCategory::quant_constants);
        }
        outs.push_back(Tensor::empty({shape[0], shape[1]}, DType::bf16, Device::cuda));
      }
      const double read = static_cast<double>(first.packed.nbytes() + first.absmax.nbytes() +
                                              first.nested_absmax.nbytes());
      const double written = static_cast<double>(n) * 2;
      float dequant_ms = median_ms(
          [&](int i) { dequantize_4bit_cuda(dequant_4bit_args(sets[i % kSets]), outs[i % kSets].data(), DType::bf16, nullptr); },
          kRuns);
      float copy_ms = median_ms(
          [&](int i) {
            NIBBLE_CUDA_CHECK(cudaMemcpyAsync(outs[(i + 1) % kSets].data(), outs[i % kSets].data(),
                                              outs[0].nbytes(), cudaMemcpyDeviceToDevice, nullptr));
          },
          kRuns);
      const double dequant_gbs = (read + written) / (dequant_ms * 1e-3) / 1e9;
      const double copy_gbs = 2.0 * written / (copy_ms * 1e-3) / 1e9;
      std::string name = std::to_string(shape[0]) + "x" + std::to_string(shape[1]);
      std::printf("%-14s %12.3f %12.1f %12.3f %12.1f %7.1f%%\n", name.c_str(), dequant_ms, dequant_gbs, copy_ms,
                  copy_gbs, 100.0 * dequant_gbs / copy_gbs);
      lines.push_back(fmt::format(
          "{{\"bench\": \"dequantize_4bit\", \"impl\": \"nibble\", \"quant_type\": \"nf4\", \"double_quant\": true, "
          "\"blocksize\": 64, \"out_dtype\": \"bfloat16\", \"shape\": [{}, {}], \"median_ms\": {:.5f}, "
          "\"bytes\": {:.0f}, \"gb_per_s\": {:.2f}, \"memcpy_median_ms\": {:.5f}, \"memcpy_gb_per_s\": {:.2f}, "
          "\"fraction_of_memcpy\": {:.4f}, \"device\": \"{}\"}}",
          shape[0], shape[1], dequant_ms, read + written, dequant_gbs, copy_ms, copy_gbs, dequant_gbs / copy_gbs,
          prop.name));
    }

    // Llama-2-7B: 32 layers x (q, k, v, o 4096x4096; gate, up 11008x4096; down 4096x11008).
    const int64_t layer_shapes[7][2] = {{4096, 4096}, {4096, 4096}, {4096, 4096}, {4096, 4096},
                                        {11008, 4096}, {11008, 4096}, {4096, 11008}};
    Tensor square = random_bf16(4096, 4096, 2);
    Tensor wide = random_bf16(11008, 4096, 3);
    // The public entry point, as `nibble quantize` runs it: output allocation, the 4-bit codes,
    // and Double Quantization with torch's mean emulated on the host.
    std::vector<const Tensor*> inputs;
    for (int layer = 0; layer < 32; ++layer)
      for (const auto& s : layer_shapes) inputs.push_back(s[0] == 4096 && s[1] == 4096 ? &square : &wide);
    float quantize_ms = median_ms(
        [&](int) {
          for (const Tensor* input : inputs) quantize_4bit(*input, QuantConfig{});
        },
        5);
    int64_t params = 0;
    for (const Tensor* input : inputs) params += input->numel();
    std::printf("quantize Llama-2-7B linears (%zu tensors, %.2f G params, NF4+DQ B=64, bf16 in): %.2f ms\n",
                inputs.size(), params / 1e9, quantize_ms);
    lines.push_back(fmt::format(
        "{{\"bench\": \"quantize_llama2_7b_linears\", \"impl\": \"nibble\", \"quant_type\": \"nf4\", "
        "\"double_quant\": true, \"blocksize\": 64, \"in_dtype\": \"bfloat16\", \"tensors\": {}, \"params\": {}, "
        "\"median_ms\": {:.3f}, \"device\": \"{}\"}}",
        inputs.size(), params, quantize_ms, prop.name));
    if (argc > 1) {
      std::ofstream file(argv[1], std::ios::app);
      if (!file) {
        std::fprintf(stderr, "bench_dequant: cannot open %s for writing\n", argv[1]);
        return 1;
      }
      for (const std::string& line : lines) file << line << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dequant: %s\n", e.what());
    return 1;
  }
}
