#include "nibble/model/llama_lora.h"

namespace nibble {

namespace {

bool drops(const LlamaLora& lora, const LoraDropoutKey* dropout) { return dropout != nullptr && lora.dropout > 0; }

Tensor f32_like(const Tensor& t, int64_t cols) {
  return Tensor::empty({t.dim(0), cols}, DType::f32, t.device(), MemoryCategory::activations);
}

// dropout(to_f32(x)), or x itself when nothing is dropped (the GEMM widens it exactly).
Tensor adapter_input(Backend& backend, const Tensor& x, const LlamaLora& lora, const LoraDropoutKey* dropout) {
  if (!drops(lora, dropout)) return x;
  Tensor dropped = f32_like(x, x.dim(1));
  backend.dropout(dropped, x, lora.dropout, dropout->seed, dropout->stream);
  return dropped;
}

// target += to_dtype(update), update F32 of target's shape: PEFT's rounding of the adapter's
// fp32 result before it meets the 16-bit one.
void add_rounded(Backend& backend, Tensor& target, const Tensor& update) {
  if (target.dtype() == DType::f32) {
    backend.add_forward(target, target, update);
    return;
  }
  Tensor rounded = Tensor::empty(target.shape(), target.dtype(), target.device(), MemoryCategory::activations);
  backend.cast(rounded, update);
  backend.add_forward(target, target, rounded);
}

}  // namespace

void lora_forward(Backend& backend, Tensor& y, const Tensor& x, const LlamaLora& lora,
                  const LoraDropoutKey* dropout, Tensor* hidden) {
  const Tensor input = adapter_input(backend, x, lora, dropout);
  Tensor h = hidden != nullptr ? *hidden : f32_like(x, lora.rank());
  backend.gemm(h, input, false, lora.a, true, 1.0f, 0.0f);  // [T, R]
  Tensor out = f32_like(y, y.dim(1));
  backend.gemm(out, h, false, lora.b, true, lora.scaling, 0.0f);  // [T, N]
  add_rounded(backend, y, out);
}

void lora_backward(Backend& backend, Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& hidden,
                   LlamaLora& lora, const LoraDropoutKey* dropout) {
  backend.gemm(lora.grad_b, dy, true, hidden, false, lora.scaling, 1.0f);  // [N, R]
  Tensor dh = f32_like(dy, lora.rank());
  backend.gemm(dh, dy, false, lora.b, false, lora.scaling, 0.0f);  // [T, R]
  const Tensor input = adapter_input(backend, x, lora, dropout);
  backend.gemm(lora.grad_a, dh, true, input, false, 1.0f, 1.0f);  // [R, K]
  Tensor dinput = f32_like(dx, dx.dim(1));
  backend.gemm(dinput, dh, false, lora.a, false, 1.0f, 0.0f);  // [T, K]
  if (drops(lora, dropout)) backend.dropout(dinput, dinput, lora.dropout, dropout->seed, dropout->stream);
  add_rounded(backend, dx, dinput);
}

}  // namespace nibble
