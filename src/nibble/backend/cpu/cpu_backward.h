// The CPU reference for the training ops (backward of each forward, packed attention, the LoRA
// GEMM, cross-entropy), split from cpu_backend.cpp to keep files short, plus the float
// conversions both files use. Each op validates its arguments (op_checks.h) itself.
#pragma once

#include <cstdint>
#include <vector>

#include "nibble/core/tensor.h"

namespace nibble::cpu {

// An activation tensor widened to floats (exact), and floats stored back rounded once.
std::vector<float> to_floats(const Tensor& t);
void store_floats(Tensor& t, const std::vector<float>& values);
// Rounds one float to `dtype` and back: the value a tensor of that dtype would hold.
float round_to(DType dtype, float x);

// rsqrt(mean(row^2) + eps) of one row of C floats, exactly as rmsnorm_forward computes it, so a
// recomputed rstd equals a saved one.
float rmsnorm_rstd(const float* row, int64_t C, float eps);

// The Backend ops of the same names (backend.h says what each computes).
void rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor* rstd,
                      float eps);
void linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w);
void gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha, float beta);
void attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& seq_ids);
void attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                               const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                               const Tensor& seq_ids);
void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up);
void cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels, float grad_scale);

}  // namespace nibble::cpu
