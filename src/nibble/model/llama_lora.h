// A LoRA adapter on one projection, applied unmerged as PEFT 0.21's lora.Linear and
// lora.Linear4bit apply it:
//   y = W x + to_dtype(scaling * B (A dropout(to_f32(x))))
// PEFT keeps A and B in fp32 and casts x to their dtype, so the adapter path runs in fp32 and
// its output is rounded once to the activation dtype before the add (a second rounding). The
// same holds for the gradients: the adapter's input gradient is formed in fp32 and rounded to
// the activation dtype before it joins the base path's.
//
// Letters: T tokens, K in features, N out features, R rank (as in backend.h).
#pragma once

#include <cstdint>

#include "nibble/backend/backend.h"

namespace nibble {

struct LlamaLora {
  Tensor a;  // F32 [R, K], on the model's device
  Tensor b;  // F32 [N, R]
  float scaling = 0.0f;  // lora_alpha / r, or / sqrt(r) with rsLoRA
  float dropout = 0.0f;  // lora_dropout: applied in training only
  Tensor grad_a;  // F32 [R, K] while training, else undefined
  Tensor grad_b;  // F32 [N, R]
  int64_t rank() const { return a.dim(0); }
};

// The Philox stream of one dropout mask, or none (inference, or lora.dropout == 0).
struct LoraDropoutKey {
  uint64_t seed = 0;
  uint64_t stream = 0;
};

// y[T, N] += the adapter's output for x[T, K]. `hidden`, when not null, receives
// dropout(x) @ A^T as F32 [T, R]: the backward's input for B's gradient. `dropout` null means
// no dropout (evaluation).
void lora_forward(Backend& backend, Tensor& y, const Tensor& x, const LlamaLora& lora,
                  const LoraDropoutKey* dropout, Tensor* hidden);

// From dy[T, N], the forward's x[T, K] and hidden[T, R] (and the same dropout key):
//   grad_b += scaling * dy^T @ hidden
//   dh      = scaling * dy @ B                       (F32 [T, R])
//   grad_a += dh^T @ dropout(x)
//   dx     += to_dtype(dropout'(dh @ A))             (the same mask, same 1/(1-p))
void lora_backward(Backend& backend, Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& hidden,
                   LlamaLora& lora, const LoraDropoutKey* dropout);

}  // namespace nibble
