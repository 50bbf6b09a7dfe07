// Benchmark of the fused 4-bit GEMV (backend/cuda/gemv_4bit.cuh) at T = 1, BF16, NF4 + DQ,
// B = 64, for Llama shapes W[N, K]: 4096x4096, 11008x4096, 4096x11008 and 8192x28672.
// Decoding is memory-bound, so the figure of merit is bytes moved (packed codes, DQ constants, x
// and y) over time, next to a device-to-device cudaMemcpy measured in the same run (bytes read
// plus written). The dequantize + cuBLAS path is timed on the same inputs for comparison, and the
// two outputs are compared (relative error; exit 1 past the op test's bound).
// Timing: each measurement is a CUDA graph of kLaunches launches rotating over buffer sets whose
// packed weights total more than 3x the L2 cache; CUDA events around graph replays, the median
// of kRuns replays divided by kLaunches. Usage: bench_gemv_4bit [OUT.jsonl] (appends a line per
// shape) and prints a table.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "nibble/core/cuda_check.h"
#include "nibble/backend/cuda/gemv_4bit.cuh"
#include "nibble/backend/cuda/linear.cuh"
#include "nibble/core/cuda_check.h"
#include "nibble/core/half.h"
#include "nibble/core/tensor.h"
#include "nibble/quant/quant_cuda.h"
#include "nibble/quant/quantize.h"

using namespace nibble;

namespace {

constexpr int kRuns = 50;
constexpr int kLaunches = 20;  // per graph replay

Tensor random_bf16(int64_t rows, int64_t cols, double scale, uint32_t seed) {
  Tensor host = Tensor::empty({rows, cols}, DType::bf16);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  // A few million draws, tiled with a stride, keep setup fast; blocks still see varied data.
  std::vector<bf16_t> pattern(1 << 22);
  for (auto& v : pattern) v = float_to_bf16(normal(rng));
  bf16_t* p = host.data_as<bf16_t>();
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = pattern[(i * 7919) % pattern.size()];
  return host.to(Device::cuda);
}


// Median milliseconds of one launch(i): kLaunches of them captured in a graph on `stream`.
float median_ms(cudaStream_t stream, const std::function<void(int)>& launch) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  NIBBLE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kLaunches; ++i) launch(i);
  NIBBLE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  NIBBLE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  NIBBLE_CUDA_CHECK(cudaEventCreate(&start));
  NIBBLE_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) NIBBLE_CUDA_CHECK(cudaGraphLaunch(exec, stream));  // warm-up
  std::vector<float> times;
  for (int r = 0; r < kRuns; ++r) {
    NIBBLE_CUDA_CHECK(cudaEventRecord(start, stream));
    NIBBLE_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    NIBBLE_CUDA_CHECK(cudaEventRecord(stop, stream));
    NIBBLE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    NIBBLE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms / kLaunches);
  }
  NIBBLE_CUDA_CHECK(cudaEventDestroy(start));
  NIBBLE_CUDA_CHECK(cudaEventDestroy(stop));
  NIBBLE_CUDA_CHECK(cudaGraphExecDestroy(exec));
  NIBBLE_CUDA_CHECK(cudaGraphDestroy(graph));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::vector<double> host_doubles(const Tensor& t) {
  Tensor h = t.to(Device::cpu);
  std::vector<double> out(h.numel());
  for (int64_t i = 0; i < h.numel(); ++i) out[i] = bf16_to_float(h.data_as<bf16_t>()[i]);
  return out;
}

double relative_error(const std::vector<double>& out, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : INFINITY;  // an all-zero reference proves nothing
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (!cuda_available()) {
      std::fprintf(stderr, "bench_gemv_4bit: no CUDA device visible\n");
      return 1;
    }
    cudaDeviceProp prop;
    NIBBLE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    cudaStream_t stream;
    NIBBLE_CUDA_CHECK(cudaStreamCreate(&stream));
    cublasHandle_t cublas;
    NIBBLE_CUBLAS_CHECK(cublasCreate(&cublas));
    NIBBLE_CUBLAS_CHECK(cublasSetStream(cublas, stream));

    // The copy ceiling: 1 GiB device to device, read + written.
    const size_t copy_bytes = size_t{1} << 30;
    Tensor copy_a = Tensor::empty({static_cast<int64_t>(copy_bytes)}, DType::u8, Device::cuda);
    Tensor copy_b = Tensor::empty({static_cast<int64_t>(copy_bytes)}, DType::u8, Device::cuda);
    NIBBLE_CUDA_CHECK(cudaMemset(copy_a.data(), 1, copy_bytes));
    const float copy_ms = median_ms(stream, [&](int i) {
      NIBBLE_CUDA_CHECK(cudaMemcpyAsync(i % 2 ? copy_a.data() : copy_b.data(), i % 2 ? copy_b.data() : copy_a.data(),
                                        copy_bytes, cudaMemcpyDeviceToDevice, stream));
    });
    copy_a = Tensor();
    copy_b = Tensor();
    const double copy_gbs = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;
    std::printf("device: %s, L2 %.0f MiB, cudaMemcpy d2d %.1f GB/s (read + write)\n", prop.name,
                prop.l2CacheSize / 1048576.0, copy_gbs);
    std::printf("%-12s %10s %10s %8s %14s %8s %10s\n", "N x K", "gemv us", "GB/s", "of copy", "dequant+gemm us",
                "speedup", "rel err");

    const int64_t T = 1;
    const int64_t shapes[4][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {8192, 28672}};
    std::vector<std::string> lines;
    bool all_ok = true;
    for (const auto& shape : shapes) {
      const int64_t N = shape[0], K = shape[1];
      QuantizedWeight first;
      {
        Tensor weight = random_bf16(N, K, 0.02, 1);
        first = quantize_4bit(weight, QuantConfig{QuantType::nf4, 64, true});
      }
      const int sets = static_cast<int>(
          std::max<int64_t>(2, (3 * static_cast<int64_t>(prop.l2CacheSize)) / first.packed.nbytes() + 1));
      std::vector<QuantizedWeight> w(sets, first);
      std::vector<Tensor> x, y;
      for (int s = 0; s < sets; ++s) {
        if (s > 0) {
          w[s].packed = first.packed.to(Device::cuda, MemoryCategory::base_weights);
          w[s].absmax = first.absmax.to(Device::cuda, MemoryCategory::quant_constants);
          w[s].nested_absmax = first.nested_absmax.to(Device::cuda, MemoryCategory::quant_constants);
        }
        x.push_back(random_bf16(T, K, 1.0, 100 + s));
        y.push_back(Tensor::empty({T, N}, DType::bf16, Device::cuda));
      }
      Tensor workspace = Tensor::empty({N, K}, DType::bf16, Device::cuda);
      Tensor y_ref = Tensor::empty({T, N}, DType::bf16, Device::cuda);

      auto gemv = [&](int i, Tensor& out) {
        const int s = i % sets;
        cuda::gemv_4bit_forward_launch(out.data(), x[s].data(), dequant_4bit_args(w[s]), N, K, nullptr, T, DType::bf16, stream);
      };
      auto dequant_gemm = [&](int i, Tensor& out) {
        const int s = i % sets;
        dequantize_4bit_cuda(dequant_4bit_args(w[s]), workspace.data(), DType::bf16, stream);
        cuda::linear_forward_launch(cublas, out.data(), x[s].data(), workspace.data(), nullptr, T, K, N, DType::bf16,
                                    stream);
      };
      // Check first, on poisoned outputs (0xff: NaN in BF16).
      NIBBLE_CUDA_CHECK(cudaMemsetAsync(y[0].data(), 0xff, y[0].nbytes(), stream));
      gemv(0, y[0]);
      dequant_gemm(0, y_ref);
      NIBBLE_CUDA_CHECK(cudaStreamSynchronize(stream));
      const double rel = relative_error(host_doubles(y[0]), host_doubles(y_ref));
      // The op test's bound (one BF16 ulp plus K fp32 roundings), twice: both paths are within it.
      const double bound = 2 * (std::ldexp(1.0, -7) + K * std::ldexp(1.0, -23));
      const bool ok = std::isfinite(rel) && rel <= bound;
      all_ok = all_ok && ok;

      const float gemv_ms = median_ms(stream, [&](int i) { gemv(i, y[i % sets]); });
      const float ref_ms = median_ms(stream, [&](int i) { dequant_gemm(i, y_ref); });
      const double bytes = static_cast<double>(first.packed.nbytes() + first.absmax.nbytes() +
                                               first.nested_absmax.nbytes() + x[0].nbytes() + y[0].nbytes());
      const double gbs = bytes / (gemv_ms * 1e-3) / 1e9;
      const std::string name = std::to_string(N) + "x" + std::to_string(K);
      std::printf("%-12s %10.2f %10.1f %7.1f%% %14.2f %7.1fx %10.2e%s\n", name.c_str(), gemv_ms * 1e3, gbs,
                  100.0 * gbs / copy_gbs, ref_ms * 1e3, ref_ms / gemv_ms, rel, ok ? "" : "  FAILED");
      lines.push_back(fmt::format(
          "{{\"bench\": \"gemv_4bit\", \"impl\": \"nibble\", \"quant_type\": \"nf4\", \"double_quant\": true, "
          "\"blocksize\": 64, \"dtype\": \"bfloat16\", \"T\": {}, \"shape\": [{}, {}], \"median_us\": {:.3f}, "
          "\"bytes\": {:.0f}, \"gb_per_s\": {:.2f}, \"memcpy_gb_per_s\": {:.2f}, \"fraction_of_memcpy\": {:.4f}, "
          "\"dequant_gemm_median_us\": {:.3f}, \"rel_err_vs_dequant_gemm\": {:.3e}, \"check\": \"{}\", "
          "\"device\": \"{}\"}}",
          T, N, K, gemv_ms * 1e3, bytes, gbs, copy_gbs, gbs / copy_gbs, ref_ms * 1e3, rel, ok ? "ok" : "failed",
          prop.name));
    }
    if (argc > 1) {
      std::ofstream file(argv[1], std::ios::app);
      if (!file) {
        std::fprintf(stderr, "bench_gemv_4bit: cannot open %s for writing\n", argv[1]);
        return 1;
      }
      for (const std::string& line : lines) file << line << "\n";
    }
    cublasDestroy(cublas);
    cudaStreamDestroy(stream);
    if (!all_ok) std::fprintf(stderr, "bench_gemv_4bit: the GEMV disagrees with dequantize + GEMM\n");
    return all_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemv_4bit: %s\n", e.what());
    return 1;
  }
}
