#include "nibble/optim/grad_clip.h"

#include <cmath>
#include <cstring>

#if defined(NIBBLE_WITH_CUDA)
#include "nibble/core/cuda_check.h"
#include "nibble/optim/adamw_cuda.h"
#endif

namespace nibble {

namespace {

Device check_grads(const std::vector<Tensor>& grads) {
  Device device = grads.empty() ? Device::cpu : grads.front().device();
  for (size_t i = 0; i < grads.size(); ++i) {
    NIBBLE_CHECK(grads[i].dtype() == DType::f32, "gradient {} is {}: expected float32", i, grads[i].describe());
    NIBBLE_CHECK(grads[i].device() == device, "gradient {} is {}: expected every gradient on {}", i,
                 grads[i].describe(), device_name(device));
  }
#if !defined(NIBBLE_WITH_CUDA)
  NIBBLE_CHECK(device == Device::cpu, "gradients on cuda need a build with CUDA");
#endif
  return device;
}

}  // namespace

float grad_norm(const std::vector<Tensor>& grads) {
  const Device device = check_grads(grads);
  double sum = 0.0;
  if (device == Device::cpu) {
    for (const Tensor& t : grads) {
      const float* x = t.data_as<float>();
      for (int64_t i = 0; i < t.numel(); ++i) sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    }
  } else {
#if defined(NIBBLE_WITH_CUDA)
    Tensor accumulator = Tensor::zeros({1}, DType::f64, Device::cuda);
    for (const Tensor& t : grads) sum_squares_cuda(t.data_as<float>(), t.numel(), accumulator.data_as<double>(), 0);
    NIBBLE_CUDA_CHECK(cudaMemcpy(&sum, accumulator.data(), sizeof(double), cudaMemcpyDeviceToHost));
#endif
  }
  return static_cast<float>(std::sqrt(sum));
}

float clip_grad_norm(const std::vector<Tensor>& grads, float max_norm) {
  NIBBLE_CHECK(max_norm > 0.0f, "max_grad_norm must be positive, got {}", max_norm);
  const float total = grad_norm(grads);
  float coef = max_norm / (total + 1e-6f);
  if (!(coef < 1.0f) && !std::isnan(coef)) return total;  // clamped to 1: multiplying changes nothing
  for (const Tensor& handle : grads) {
    Tensor t = handle;
    float* x = t.data_as<float>();
    if (t.device() == Device::cpu) {
      for (int64_t i = 0; i < t.numel(); ++i) x[i] = x[i] * coef;
    } else {
#if defined(NIBBLE_WITH_CUDA)
      scale_cuda(x, t.numel(), coef, 0);
#endif
    }
  }
  return total;
}

void zero_grads(const std::vector<Tensor>& grads) {
  check_grads(grads);
  for (const Tensor& handle : grads) {
    Tensor t = handle;
    if (t.device() == Device::cpu) {
      std::memset(t.data(), 0, t.nbytes());
    } else {
#if defined(NIBBLE_WITH_CUDA)
      NIBBLE_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.nbytes(), 0));
#endif
    }
  }
}

}  // namespace nibble
