#include "nibble/backend/linear_4bit.h"

#include "nibble/quant/quantize.h"

namespace nibble {

void linear_4bit_forward_with(Backend& backend, void* cuda_stream, Tensor& y, const Tensor& x,
                              const QuantizedWeight& w, const Tensor* bias, Tensor& workspace) {
  const char* op = "linear_4bit_forward";
  check_quantized_weight(w, "linear_4bit_forward: w");
  NIBBLE_CHECK(w.shape.size() == 2, "{}: w has shape {}, expected [N, K]", op, shape_to_string(w.shape));
  NIBBLE_CHECK(w.device() == backend.device(), "{}: w is on {}, expected {}", op, device_name(w.device()),
               device_name(backend.device()));
  NIBBLE_CHECK(x.rank() == 2 && x.dim(1) == w.shape[1], "{}: x is {}, expected [T, K] with K = {} (w is {})", op,
               x.describe(), w.shape[1], shape_to_string(w.shape));
  NIBBLE_CHECK(workspace.device() == backend.device() && workspace.dtype() == x.dtype() &&
                   workspace.numel() == w.numel(),
               "{}: workspace is {}, expected {} elements of {} on {}", op, workspace.describe(), w.numel(),
               dtype_safetensors_name(x.dtype()), device_name(backend.device()));
  Tensor dense = workspace.reshape({w.numel()});
  dequantize_4bit_into(w, dense, cuda_stream);
  backend.linear_forward(y, x, dense.reshape(w.shape), bias);
}

}  // namespace nibble
