#include "nibble/backend/linear_4bit.h"

#include "nibble/quant/quantize.h"

namespace nibble {

LinearDims check_linear_4bit_forward(Device device, const Tensor& y, const Tensor& x, const QuantizedWeight& w,
                                     const Tensor* bias, const Tensor& workspace) {
  const char* op = "linear_4bit_forward";
  check_quantized_weight(w, "linear_4bit_forward: w");
  NIBBLE_CHECK(w.shape.size() == 2, "{}: w has shape {}, expected [N, K]", op, shape_to_string(w.shape));
  NIBBLE_CHECK(w.device() == device, "{}: w is on {}, expected {}", op, device_name(w.device()),
               device_name(device));
  NIBBLE_CHECK(x.defined() && x.device() == device && is_activation_dtype(x.dtype()),
               "{}: x is {}, expected F32, F16 or BF16 on {}", op, x.describe(), device_name(device));
  NIBBLE_CHECK(x.rank() == 2 && x.dim(1) == w.shape[1], "{}: x is {}, expected [T, K] with K = {} (w is {})", op,
               x.describe(), w.shape[1], shape_to_string(w.shape));
  const LinearDims d{x.dim(0), w.shape[1], w.shape[0]};
  const Shape y_shape{d.T, d.N}, bias_shape{d.N};
  NIBBLE_CHECK(y.defined() && y.device() == device && y.dtype() == x.dtype() && y.shape() == y_shape,
               "{}: y is {}, expected {} [T, N] = {} on {}", op, y.describe(), dtype_safetensors_name(x.dtype()),
               shape_to_string(y_shape), device_name(device));
  if (bias != nullptr)
    NIBBLE_CHECK(bias->defined() && bias->device() == device && bias->dtype() == x.dtype() &&
                     bias->shape() == bias_shape,
                 "{}: bias is {}, expected {} [N] = {} on {}", op, bias->describe(),
                 dtype_safetensors_name(x.dtype()), shape_to_string(bias_shape), device_name(device));
  NIBBLE_CHECK(workspace.device() == device && workspace.dtype() == x.dtype() && workspace.numel() == w.numel(),
               "{}: workspace is {}, expected {} elements of {} on {}", op, workspace.describe(), w.numel(),
               dtype_safetensors_name(x.dtype()), device_name(device));
  return d;
}

void linear_4bit_forward_with(Backend& backend, void* cuda_stream, Tensor& y, const Tensor& x,
                              const QuantizedWeight& w, const Tensor* bias, Tensor& workspace) {
  check_linear_4bit_forward(backend.device(), y, x, w, bias, workspace);
  Tensor dense = workspace.reshape({w.numel()});
  dequantize_4bit_into(w, dense, cuda_stream);
  backend.linear_forward(y, x, dense.reshape(w.shape), bias);
}

void linear_4bit_backward_with(Backend& backend, void* cuda_stream, Tensor& dx, const Tensor& dy,
                               const QuantizedWeight& w, Tensor& workspace) {
  const char* op = "linear_4bit_backward";
  check_quantized_weight(w, "linear_4bit_backward: w");
  NIBBLE_CHECK(w.shape.size() == 2, "{}: w has shape {}, expected [N, K]", op, shape_to_string(w.shape));
  NIBBLE_CHECK(w.device() == backend.device(), "{}: w is on {}, expected {}", op, device_name(w.device()),
               device_name(backend.device()));
  NIBBLE_CHECK(dy.defined() && is_activation_dtype(dy.dtype()), "{}: dy is {}, expected F32, F16 or BF16", op,
               dy.describe());
  NIBBLE_CHECK(workspace.device() == backend.device() && workspace.dtype() == dy.dtype() &&
                   workspace.numel() == w.numel(),
               "{}: workspace is {}, expected {} elements of {} on {}", op, workspace.describe(), w.numel(),
               dtype_safetensors_name(dy.dtype()), device_name(backend.device()));
  Tensor dense = workspace.reshape({w.numel()});
  dequantize_4bit_into(w, dense, cuda_stream);
  // dx and dy against [N, K] are checked here, naming linear_backward.
  backend.linear_backward(dx, dy, dense.reshape(w.shape));
}

}  // namespace nibble
