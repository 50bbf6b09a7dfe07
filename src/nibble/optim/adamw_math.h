// The per-element AdamW arithmetic, shared by the CPU reference and the CUDA kernels (compiled by
// g++ and nvcc) so both do the same float32 operations in the same order and agree bit for bit.
// On the device every operation is an explicit round-to-nearest intrinsic, which nvcc never
// contracts into an FMA; the host files are compiled with -ffp-contract=off for the same reason.
// The few per-step scalars (bias corrections, step size, decay factor) are computed once on the
// host (adamw_step_scalars) and passed in, so powf/sqrt differences between libm and CUDA's math
// library cannot split the two paths.
//
// Two rules exist because the two libraries users compare us with differ:
//  - torch (torch.optim.AdamW, transformers' `adamw_torch`): decay first, p *= 1 - lr*wd; then
//    m = lerp(m, g, 1-b1), v = v*b2 + (1-b2)*g*g, denom = sqrt(v)/sqrt(1-b2^t) + eps,
//    p += -(lr/(1-b1^t)) * m/denom. Scalars in double as torch's Python code forms them, then
//    rounded to float32 as ATen does when it applies them to float32 tensors.
//  - bnb (bitsandbytes' kOptimizer32bit2State and 8-bit blockwise kernels, used for
//    `paged_adamw_32bit` and `paged_adamw_8bit`; bnb-format.md 5): m = m*b1 + (1-b1)*g,
//    v = v*b2 + (1-b2)*g*g, p += (-lr*c2/c1) * m/(sqrt(v) + eps*c2) with c1 = 1-b1^t and
//    c2 = sqrt(1-b2^t) in float32, THEN p *= 1 - lr*wd.
// Mathematically both are m_hat/(sqrt(v_hat)+eps); they differ in when the decay applies (which
// changes p by O(lr^2 * wd) a step) and in rounding.
#pragma once

#include <cmath>
#include <cstdint>

#include "nibble/core/half.h"

namespace nibble {

enum class AdamwRule : uint8_t { torch, bnb };

// Held as doubles, as the user (and Python) writes them: torch forms 1 - beta2 and lr * wd in
// double before rounding to float32, bitsandbytes rounds each to float32 first; the difference
// shows in the last bits (1 - 0.999 vs 1 - 0.999f), so each rule does its own rounding.
struct AdamwHyper {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Everything an element update needs besides its own p, g, m, v.
struct AdamwStepScalars {
  float beta1;
  float one_minus_beta1;  // lerp weight (torch) or (1-b1) factor (bnb)
  float beta2;
  float one_minus_beta2;
  float decay;            // 1 - lr*wd
  float step_size;        // torch: -lr/c1; bnb: -lr*c2/c1
  float bias2_sqrt;       // torch: sqrt(1-b2^t), which sqrt(v) is divided by
  float eps;              // torch: eps; bnb: eps*c2
  bool apply_decay;       // wd != 0 (bnb tests wd > 0; torch always multiplies, by 1.0 when wd = 0)
};

// `step` counts from 1 (the first update is step 1), as both libraries count.
AdamwStepScalars adamw_step_scalars(AdamwRule rule, const AdamwHyper& hyper, double lr, int64_t step);

#if defined(__CUDA_ARCH__)
#define NIBBLE_FMUL(a, b) __fmul_rn(a, b)
#define NIBBLE_FADD(a, b) __fadd_rn(a, b)
#define NIBBLE_FSUB(a, b) __fsub_rn(a, b)
#define NIBBLE_FDIV(a, b) __fdiv_rn(a, b)
#define NIBBLE_FSQRT(a) __fsqrt_rn(a)
#else
#define NIBBLE_FMUL(a, b) ((a) * (b))
#define NIBBLE_FADD(a, b) ((a) + (b))
#define NIBBLE_FSUB(a, b) ((a) - (b))
#define NIBBLE_FDIV(a, b) ((a) / (b))
#define NIBBLE_FSQRT(a) std::sqrt(a)
#endif

// torch's order of operations (torch/optim/adamw.py single-tensor path on float32 tensors).
NIBBLE_HOST_DEVICE inline void adamw_torch_element(const AdamwStepScalars& s, float& p, float g, float& m,
                                                   float& v) {
  p = NIBBLE_FMUL(p, s.decay);
  // lerp with weight < 0.5: m + w*(g - m).
  m = NIBBLE_FADD(m, NIBBLE_FMUL(s.one_minus_beta1, NIBBLE_FSUB(g, m)));
  // addcmul: v + value*g*g, evaluated (value*g)*g.
  v = NIBBLE_FADD(NIBBLE_FMUL(v, s.beta2), NIBBLE_FMUL(NIBBLE_FMUL(s.one_minus_beta2, g), g));
  float denom = NIBBLE_FADD(NIBBLE_FDIV(NIBBLE_FSQRT(v), s.bias2_sqrt), s.eps);
  // addcdiv: p + value*(m/denom).
  p = NIBBLE_FADD(p, NIBBLE_FMUL(s.step_size, NIBBLE_FDIV(m, denom)));
}

// bitsandbytes' order; the states are updated first, then p from the new (unquantized) states.
NIBBLE_HOST_DEVICE inline void adamw_bnb_states(const AdamwStepScalars& s, float g, float& m, float& v) {
  m = NIBBLE_FADD(NIBBLE_FMUL(m, s.beta1), NIBBLE_FMUL(s.one_minus_beta1, g));
  v = NIBBLE_FADD(NIBBLE_FMUL(v, s.beta2), NIBBLE_FMUL(s.one_minus_beta2, NIBBLE_FMUL(g, g)));
}
NIBBLE_HOST_DEVICE inline void adamw_bnb_param(const AdamwStepScalars& s, float& p, float m, float v) {
  p = NIBBLE_FADD(p, NIBBLE_FMUL(s.step_size, NIBBLE_FDIV(m, NIBBLE_FADD(NIBBLE_FSQRT(v), s.eps))));
  if (s.apply_decay) p = NIBBLE_FMUL(p, s.decay);
}
NIBBLE_HOST_DEVICE inline void adamw_bnb_element(const AdamwStepScalars& s, float& p, float g, float& m, float& v) {
  adamw_bnb_states(s, g, m, v);
  adamw_bnb_param(s, p, m, v);
}

}  // namespace nibble
