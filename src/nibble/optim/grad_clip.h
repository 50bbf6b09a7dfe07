// Gradient utilities the training loop needs around the optimizer: the global L2 norm and
// torch.nn.utils.clip_grad_norm_'s clipping, and zeroing between accumulation windows.
// Gradients are float32 tensors, all on one device (cpu or cuda).
#pragma once

#include <vector>

#include "nibble/core/tensor.h"

namespace nibble {

// sqrt(sum of squares) over every element of every tensor, accumulated in double and returned as
// float32 (torch accumulates a float32 norm in double on the CPU too).
float grad_norm(const std::vector<Tensor>& grads);

// torch's clip_grad_norm_ (error_if_nonfinite=False): total = grad_norm(grads),
// coef = min(max_norm / (total + 1e-6), 1) in float32, every gradient multiplied by coef (when
// coef is 1 the multiply changes nothing, so it is skipped). Returns total, as torch does.
float clip_grad_norm(const std::vector<Tensor>& grads, float max_norm);

// Sets every gradient to +0.0 (the start of an accumulation window).
void zero_grads(const std::vector<Tensor>& grads);

}  // namespace nibble
