// CUDA launchers of quant/ (raw device pointers + sizes + stream). Included only by code built
// with NIBBLE_WITH_CUDA. The validated entry points are in quantize.h; these trust their
// arguments. n = weight elements, B = block size, nb = ceil(n / B).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "nibble/core/dtype.h"
#include "nibble/quant/quant_state.h"
#include "nibble/quant/torch_mean.h"

namespace nibble {

// absmax per block and packed codes, scaled with rcp.approx like bitsandbytes' kernel so the
// bytes equal bnb's CUDA output.
void quantize_4bit_cuda(const void* x /* [n] of dtype */, DType dtype, int64_t n, int64_t blocksize, QuantType type,
                        uint8_t* packed /* [(n+1)/2] */, float* absmax /* [nb] */, cudaStream_t stream);

// torch.mean(x) for x = float32[n] on the device: the same float32 as torch_cuda_mean_f32
// (torch_mean.h) given the same `device` facts, written to mean[0]. The misalignment is read from
// x itself (the 16-byte loads need exactly that one), not from `device`. partials is workspace of
// torch_mean_f32_cuda_partials(n, device) floats (0 when one CTA suffices; may then be null).
int64_t torch_mean_f32_cuda_partials(int64_t n, const TorchMeanDevice& device);
void torch_mean_f32_cuda(const float* x /* [n] */, int64_t n, const TorchMeanDevice& device, float* partials,
                         float* mean /* [1] */, cudaStream_t stream);

// The current CUDA device's facts as ATen reads them (multiprocessor count, max threads per
// multiprocessor); misalignment 0.
TorchMeanDevice torch_mean_cuda_device();

// Double Quantization on the device: 8-bit blocks of 256 of absmax - offset over `map`. The
// offset is torch's float32 mean of absmax, left on the device by torch_mean_f32_cuda.
void double_quantize_cuda(const float* absmax /* [nb] */, int64_t nb, const float* map /* [256] */,
                          const float* offset /* [1] */, uint8_t* codes /* [nb] */,
                          float* nested_absmax /* [ceil(nb/256)] */, cudaStream_t stream);

// Everything dequantize needs; with double_quant, absmax_codes/nested_*/offset replace absmax.
struct Dequant4bitArgs {
  const uint8_t* packed = nullptr;  // [(n+1)/2]
  int64_t n = 0;
  int64_t blocksize = 64;
  QuantType type = QuantType::nf4;
  bool double_quant = false;
  const float* absmax = nullptr;         // F32 [nb] without DQ
  const uint8_t* absmax_codes = nullptr; // U8 [nb] with DQ
  const float* nested_absmax = nullptr;  // F32 [ceil(nb/nested_blocksize)]
  const float* nested_code = nullptr;    // F32 [256], the stored map
  float offset = 0.0f;
  int64_t nested_blocksize = 256;
};

// The device pointers and fields of a QuantizedWeight on cuda, as the kernels take them.
Dequant4bitArgs dequant_4bit_args(const QuantizedWeight& w);

// out[i] = out_dtype(table[code_i] * absmax[i / B]), absmax rebuilt as fl(fl(map*nested)+offset).
void dequantize_4bit_cuda(const Dequant4bitArgs& args, void* out /* [n] of out_dtype */, DType out_dtype,
                          cudaStream_t stream);

// F32 absmax per block (rebuilt from the DQ codes, or copied).
void dequantize_absmax_cuda(const Dequant4bitArgs& args, float* absmax /* [nb] */, cudaStream_t stream);

}  // namespace nibble
