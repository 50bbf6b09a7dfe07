// Backend: the op interface the model is written against, one implementation per device.
// The CPU backend (cpu/) is the reference every CUDA kernel (cuda/) is tested against.
//
// Conventions shared by every op:
// - Tensors live on the backend's device, are contiguous and row-major.
// - Activations are F32, F16 or BF16, chosen by the caller at run time; an op's inputs and
//   outputs share one activation dtype unless the op says otherwise.
// - Outputs come first and are allocated by the caller; the op checks shapes, dtypes and devices
//   and throws nibble::Error naming the op and what it expected.
// - Reductions and products accumulate in fp32; results are rounded to the activation dtype at
//   the points where Hugging Face transformers rounds them, so bf16 runs match its numbers.
//
// Dimension letters (used in every shape comment of this module):
//   T   tokens of this call (all sequences of a batch, packed)
//   S   keys visible to attention: earlier positions from a KV cache, then the T new ones
//   C   hidden size
//   H   attention (query) heads
//   KVH key/value heads (H is a multiple of KVH: grouped-query attention)
//   D   head dim
//   F   intermediate (MLP) size
//   V   vocabulary size
//   K   a linear layer's input features, N its output features
//   P   positions in a RoPE table
#pragma once

#include <memory>
#include <string_view>

#include "nibble/backend/rope_table.h"
#include "nibble/core/tensor.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual std::string_view name() const = 0;
  // Waits until every op issued so far has finished (a no-op on the CPU). On a GPU this is also
  // where a bad index found by an earlier op (a token id, a RoPE position) is thrown: checking it
  // in the op itself would make every call wait for the device.
  virtual void synchronize() = 0;

  // out[T, C] = table[ids[t], :]. ids I32 [T], each in [0, V); table [V, C] in the
  // activation dtype. An id outside [0, V) throws, naming the token and the id (on a GPU at the
  // next synchronize()).
  virtual void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) = 0;

  // out = a + b, elementwise over equal shapes (the residual stream), rounded once.
  virtual void add_forward(Tensor& out, const Tensor& a, const Tensor& b) = 0;

  // out = in converted to out's dtype (F32/F16/BF16), round to nearest even. Same shape.
  virtual void cast(Tensor& out, const Tensor& in) = 0;

  // out[T, C] = weight[C] * to_dtype(x * rsqrt(mean(x^2) + eps)), as HF's LlamaRMSNorm: the
  // normalization in fp32, cast to the activation dtype, then the product with the weight
  // (same dtype) rounded again.
  virtual void rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps) = 0;

  // y[T, N] = x[T, K] @ w[N, K]^T (+ bias[N]); x, w, bias and y share one dtype (F32/F16/BF16),
  // fp32 accumulation, the bias added in fp32, the result rounded once. bias may be null.
  virtual void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) = 0;

  // The same with a 4-bit weight w of shape [N, K] (NF4/FP4, with or without Double
  // Quantization): it is dequantized into `workspace` (N*K elements of x's dtype, any shape),
  // then multiplied as above. The dequantized values are exactly bitsandbytes'.
  virtual void linear_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                                   Tensor& workspace) = 0;

  // In place, HF's rotate-half RoPE: x = x*cos + rotate_half(x)*sin for q[T, H, D] and
  // k[T, KVH, D], with cos/sin taken from `table` at positions[t] (I32 [T], each in [0, P)).
  // cos and sin are rounded to the activation dtype first, and in 16-bit dtypes each product
  // and the sum are rounded, as transformers does. Positions per token let packed sequences
  // restart at 0 and let a KV cache continue at its length. A position outside [0, P) throws
  // (on a GPU at the next synchronize()).
  virtual void rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) = 0;

  // Causal grouped-query attention. out[T, H, D] from q[T, H, D], k[S, KVH, D], v[S, KVH, D]
  // with S >= T: key s is at position s and query t at position S - T + t (the first S - T keys
  // come from a KV cache), so query t sees keys [0, S - T + t]. Query head h reads kv head
  // h / (H / KVH) (HF's repeat_kv). Scale 1/sqrt(D); scores and softmax in fp32; the output
  // rounded once to the activation dtype. One sequence per call: packed sequences need separate
  // calls (a later issue adds a per-token sequence mask).
  virtual void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) = 0;

  // out[T, F] = to_dtype(silu(gate)) * up, as HF's LlamaMLP: silu in fp32 rounded to the
  // activation dtype, then the product rounded again. gate and up [T, F].
  virtual void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) = 0;
};

// The reference backend: plain loops, OpenBLAS for GEMM.
std::unique_ptr<Backend> make_cpu_backend();

// The GPU backend on the current CUDA device. Throws nibble::Error when this build has no CUDA
// or no GPU is visible.
std::unique_ptr<Backend> make_cuda_backend();

// The backend for `device`.
std::unique_ptr<Backend> make_backend(Device device);

}  // namespace nibble
