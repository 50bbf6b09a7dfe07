#include "nibble/quant/quantize.h"

#include <vector>

#include "nibble/core/error.h"
#include "nibble/quant/formats.h"
#include "nibble/quant/quantize_cpu.h"
#include "nibble/quant/sizes.h"

#ifdef NIBBLE_WITH_CUDA
#include "nibble/core/cuda_check.h"
#include "nibble/quant/quant_cuda.h"
#endif

namespace nibble {
namespace {

bool is_float_dtype(DType d) { return d == DType::f32 || d == DType::f16 || d == DType::bf16; }

bool is_power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// The quant_map as bnb stores it (F32 [16]).
Tensor quant_map_tensor(QuantType type, Device device) {
  Tensor host = Tensor::empty({16}, DType::f32);
  float* values = host.data_as<float>();
  for (int c = 0; c < 16; ++c) values[c] = bits_float(type == QuantType::nf4 ? nf4_code_bits(c) : fp4_quant_map_bits(c));
  return device == Device::cpu ? host : host.to(device, MemoryCategory::quant_constants);
}

Tensor dynamic_map_tensor(Device device) {
  Tensor host = Tensor::empty({kDynamicMapSize}, DType::f32);
  signed_dynamic_map(host.data_as<float>());
  return device == Device::cpu ? host : host.to(device, MemoryCategory::quant_constants);
}

void check_tensor(const Tensor& t, DType dtype, int64_t numel, Device device, const char* what, const char* field) {
  NIBBLE_CHECK(t.defined() && t.dtype() == dtype && t.numel() == numel && t.device() == device,
               "{}: {} is {}; expected {} with {} elements on {}", what, field, t.describe(),
               dtype_safetensors_name(dtype), numel, device_name(device));
}

}  // namespace

#ifdef NIBBLE_WITH_CUDA
Dequant4bitArgs dequant_4bit_args(const QuantizedWeight& w) {
  Dequant4bitArgs a;
  a.packed = w.packed.data_as<uint8_t>();
  a.n = w.numel();
  a.blocksize = w.blocksize;
  a.type = w.type;
  a.double_quant = w.double_quant;
  if (w.double_quant) {
    a.absmax_codes = w.absmax.data_as<uint8_t>();
    a.nested_absmax = w.nested_absmax.data_as<float>();
    a.nested_code = w.nested_code.data_as<float>();
    a.offset = w.offset;
    a.nested_blocksize = w.nested_blocksize;
  } else {
    a.absmax = w.absmax.data_as<float>();
  }
  return a;
}
#endif

void check_quantized_weight(const QuantizedWeight& w, const char* what) {
  quant_check_blocksize(w.blocksize, what);
  const int64_t n = w.numel();
  const int64_t blocks = quant_blocks(n, w.blocksize);
  const Device device = w.packed.device();
  check_tensor(w.packed, DType::u8, quant_packed_bytes(n), device, what, "packed");
  if (!w.double_quant) {
    check_tensor(w.absmax, DType::f32, blocks, device, what, "absmax (no double quantization)");
    return;
  }
  NIBBLE_CHECK(is_power_of_two(w.nested_blocksize), "{}: nested block size {} is not a power of two", what,
               w.nested_blocksize);
  check_tensor(w.absmax, DType::u8, blocks, device, what, "absmax (double-quantized codes)");
  check_tensor(w.nested_absmax, DType::f32, quant_blocks(blocks, w.nested_blocksize), device, what, "nested_absmax");
  check_tensor(w.nested_code, DType::f32, kDynamicMapSize, device, what, "nested_code");
}

QuantizedWeight quantize_4bit(const Tensor& weight, const QuantConfig& config) {
  quant_check_blocksize(config.blocksize, "quantize_4bit");
  NIBBLE_CHECK(is_float_dtype(weight.dtype()), "quantize_4bit: weight is {}; expected F32, F16 or BF16",
               weight.describe());
  const Device device = weight.device();
  const int64_t n = weight.numel();
  const int64_t blocks = quant_blocks(n, config.blocksize);
  QuantizedWeight w;
  w.type = config.type;
  w.blocksize = config.blocksize;
  w.dtype = weight.dtype();
  w.shape = weight.shape();
  w.double_quant = config.double_quant;
  w.packed = Tensor::empty({quant_packed_bytes(n), 1}, DType::u8, device, MemoryCategory::base_weights);
  w.code = quant_map_tensor(config.type, device);
  // Without DQ absmax is the result; with DQ it is a temporary and the codes replace it.
  Tensor absmax = Tensor::empty({blocks}, DType::f32, device,
                                config.double_quant ? MemoryCategory::workspace : MemoryCategory::quant_constants);
  if (config.double_quant) {
    w.absmax = Tensor::empty({blocks}, DType::u8, device, MemoryCategory::quant_constants);
    w.nested_absmax = Tensor::empty({quant_blocks(blocks, kDoubleQuantBlocksize)}, DType::f32, device,
                                    MemoryCategory::quant_constants);
    w.nested_code = dynamic_map_tensor(device);
    w.nested_blocksize = kDoubleQuantBlocksize;
  }
  if (device == Device::cpu) {
    quantize_4bit_cpu(weight.data(), weight.dtype(), n, config.blocksize, config.type, w.packed.data_as<uint8_t>(),
                      absmax.data_as<float>());
    if (config.double_quant && blocks > 0) {
      w.offset = double_quantize_cpu(absmax.data_as<float>(), blocks, w.absmax.data_as<uint8_t>(),
                                     w.nested_absmax.data_as<float>());
    }
  } else {
#ifdef NIBBLE_WITH_CUDA
    quantize_4bit_cuda(weight.data(), weight.dtype(), n, config.blocksize, config.type, w.packed.data_as<uint8_t>(),
                       absmax.data_as<float>(), nullptr);
    if (config.double_quant && blocks > 0) {
      // The offset is torch's absmax.mean() with ATen's reduction order replayed on the device
      // (torch_mean_f32_cuda, the same float32 as torch_mean.h); it stays there for the nested
      // quantization, and the host reads the one float back at the end. scratch = [mean, partials].
      const TorchMeanDevice facts = torch_mean_cuda_device();
      Tensor scratch = Tensor::empty({1 + torch_mean_f32_cuda_partials(blocks, facts)}, DType::f32, device);
      float* offset = scratch.data_as<float>();
      torch_mean_f32_cuda(absmax.data_as<float>(), blocks, facts, offset + 1, offset, nullptr);
      double_quantize_cuda(absmax.data_as<float>(), blocks, w.nested_code.data_as<float>(), offset,
                           w.absmax.data_as<uint8_t>(), w.nested_absmax.data_as<float>(), nullptr);
      NIBBLE_CUDA_CHECK(cudaMemcpy(&w.offset, offset, sizeof(float), cudaMemcpyDeviceToHost));
    }
#else
    fail("quantize_4bit: weight is on cuda but this build has no CUDA backend");
#endif
  }
  if (!config.double_quant) w.absmax = absmax;
  return w;
}

void dequantize_4bit_into(const QuantizedWeight& w, Tensor& out, void* cuda_stream) {
  check_quantized_weight(w, "dequantize_4bit");
  NIBBLE_CHECK(is_float_dtype(out.dtype()) && out.numel() == w.numel() && out.device() == w.device(),
               "dequantize_4bit: output is {}; expected F32, F16 or BF16 with {} elements on {}", out.describe(),
               w.numel(), device_name(w.device()));
  const int64_t n = w.numel();
  if (w.device() == Device::cpu) {
    const float* absmax = nullptr;
    std::vector<float> rebuilt;
    if (!w.double_quant) {
      absmax = w.absmax.data_as<float>();
    } else {
      rebuilt.resize(static_cast<size_t>(w.blocks()));
      dequantize_absmax_cpu(w.absmax.data_as<uint8_t>(), w.nested_absmax.data_as<float>(),
                            w.nested_code.data_as<float>(), w.offset, w.blocks(), w.nested_blocksize, rebuilt.data());
      absmax = rebuilt.data();
    }
    dequantize_4bit_cpu(w.packed.data_as<uint8_t>(), absmax, n, w.blocksize, w.type, out.data(), out.dtype());
    return;
  }
#ifdef NIBBLE_WITH_CUDA
  dequantize_4bit_cuda(dequant_4bit_args(w), out.data(), out.dtype(), static_cast<cudaStream_t>(cuda_stream));
#else
  fail("dequantize_4bit: weight is on cuda but this build has no CUDA backend");
#endif
}

Tensor dequantize_4bit(const QuantizedWeight& w, DType out_dtype) {
  NIBBLE_CHECK(is_float_dtype(out_dtype), "dequantize_4bit: output dtype {} is not supported; expected F32, F16 or BF16",
               dtype_safetensors_name(out_dtype));
  Tensor out = Tensor::empty(w.shape, out_dtype, w.device(), MemoryCategory::workspace);
  dequantize_4bit_into(w, out);
#ifdef NIBBLE_WITH_CUDA
  if (w.device() == Device::cuda) NIBBLE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
#endif
  return out;
}

Tensor dequantize_absmax(const QuantizedWeight& w) {
  check_quantized_weight(w, "dequantize_absmax");
  const int64_t blocks = w.blocks();
  Tensor out = Tensor::empty({blocks}, DType::f32, w.device(), MemoryCategory::workspace);
  if (w.device() == Device::cpu) {
    if (w.double_quant) {
      dequantize_absmax_cpu(w.absmax.data_as<uint8_t>(), w.nested_absmax.data_as<float>(),
                            w.nested_code.data_as<float>(), w.offset, blocks, w.nested_blocksize, out.data_as<float>());
    } else {
      out.copy_from(w.absmax);
    }
    return out;
  }
#ifdef NIBBLE_WITH_CUDA
  dequantize_absmax_cuda(dequant_4bit_args(w), out.data_as<float>(), nullptr);
  NIBBLE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
#else
  fail("dequantize_absmax: weight is on cuda but this build has no CUDA backend");
#endif
  return out;
}

}  // namespace nibble
