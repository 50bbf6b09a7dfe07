// A host emulation of PyTorch's CUDA `x.mean()` for a contiguous 1-D float32 tensor, bit for
// bit. bitsandbytes' Double Quantization takes its offset as `absmax.mean()` on the GPU, and that
// float32 result depends on the order of ATen's float32 additions and on its final multiply by a
// float reciprocal; torch_mean.cpp explains the order and where it comes from.
#pragma once

#include <cstdint>

namespace nibble {

// The launch facts that shape ATen's reduction tree. Only inputs large enough to be split across
// several CTAs (n > 130560) depend on the GPU; the defaults are the H100 SXM / H200.
struct TorchMeanDevice {
  int multiprocessor_count = 132;
  int max_threads_per_multiprocessor = 2048;
  // Misalignment of the data pointer in floats (pointer % 16 / 4). A fresh CUDA allocation,
  // as bitsandbytes' absmax is, is aligned: 0.
  int misalignment = 0;
  // PyTorch >= 2.10 on CUDA halves the warp-shuffle offset (16, 8, ..., 1); older releases and
  // ROCm double it (1, 2, ..., 16). Kept selectable so a golden check can tell them apart.
  bool warp_offsets_decreasing = true;
};

// torch.mean(x) for x = float32[n] on a CUDA device as PyTorch 2.11 computes it. NaN for n <= 0,
// as torch returns for an empty tensor.
float torch_cuda_mean_f32(const float* x /* [n] */, int64_t n);
float torch_cuda_mean_f32(const float* x /* [n] */, int64_t n, const TorchMeanDevice& device);

}  // namespace nibble
