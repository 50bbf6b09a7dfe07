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
//   M   rows of a general GEMM's output (gemm)
//
// Backward ops (training) follow their forward: gradients are named d<input> and computed in
// fp32 from the forward's saved inputs, each rounded once to its tensor's dtype unless the op
// says otherwise. Frozen weights (norm weights, the base linears) get no gradient.
#pragma once

#include <functional>
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

  // Inverted dropout, as torch.nn.Dropout in training: out[i] = in[i] * (1 / (1 - p)) where
  // keep(i), else 0, with keep(i) = philox_uniform_at(seed, stream, i) >= p (core/rng.h). The mask
  // is a pure function of (seed, stream, i), the same on every device and every time it is drawn,
  // so the backward applies the same call to the gradient and gradient checkpointing recomputes
  // the same mask. in and out: same shape, each F32, F16 or BF16 (in widened exactly, the product
  // in fp32, out rounded once). p in [0, 1).
  virtual void dropout(Tensor& out, const Tensor& in, float p, uint64_t seed, uint64_t stream) = 0;

  // out[T, C] = weight[C] * to_dtype(x * rsqrt(mean(x^2) + eps)), as HF's LlamaRMSNorm: the
  // normalization in fp32, cast to the activation dtype, then the product with the weight
  // (same dtype) rounded again. rstd, when not null, receives the fp32 rsqrt(mean(x^2) + eps)
  // F32 [T] that rmsnorm_backward can reuse instead of recomputing it.
  virtual void rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps,
                               Tensor* rstd = nullptr) = 0;

  // The residual add that ends a sub-block and the norm that starts the next: x = x + delta
  // (add_forward, in place), then out = rmsnorm_forward(x) with no rstd. x, delta, out [T, C],
  // weight [C]. This version issues the two ops; the CUDA backend fuses them into one kernel with
  // the same numbers bit for bit.
  virtual void add_rmsnorm_forward(Tensor& x, Tensor& out, const Tensor& delta, const Tensor& weight, float eps);

  // dx[T, C] from dy[T, C], the forward's x[T, C] and weight[C] (frozen: no weight gradient).
  // With n = x * rstd: dx = rstd * (g - n * mean(g * n)), g = dy * weight, all in fp32 (the
  // forward's rounding of n is taken as the identity, as autograd does), dx rounded once. rstd
  // is the forward's F32 [T] or null to recompute it from x and eps.
  virtual void rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight,
                                const Tensor* rstd, float eps) = 0;

  // y[T, N] = x[T, K] @ w[N, K]^T (+ bias[N]); x, w, bias and y share one dtype (F32/F16/BF16),
  // fp32 accumulation, the bias added in fp32, the result rounded once. bias may be null.
  virtual void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) = 0;

  // The same with a 4-bit weight w of shape [N, K] (NF4/FP4, with or without Double
  // Quantization): it is dequantized into `workspace` (N*K elements of x's dtype, any shape),
  // then multiplied as above. The dequantized values are exactly bitsandbytes'.
  virtual void linear_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                                   Tensor& workspace) = 0;

  // The input gradient of linear_forward: dx[T, K] = dy[T, N] @ w[N, K], one dtype, fp32
  // accumulation, rounded once. (w is frozen; a bias gradient is the caller's column sum.)
  virtual void linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w) = 0;

  // The same for a 4-bit w [N, K]: dequantized into `workspace` (N*K elements of dy's dtype, any
  // shape) exactly as linear_4bit_forward does, then linear_backward.
  virtual void linear_4bit_backward(Tensor& dx, const Tensor& dy, const QuantizedWeight& w, Tensor& workspace) = 0;

  // General GEMM for LoRA: out[M, N] = alpha * op(a)[M, K] @ op(b)[K, N] + beta * out, where
  // op(a) = a^T when trans_a (a stored [K, M]) and likewise for b. a, b and out may each be F32,
  // F16 or BF16: inputs are widened to fp32 exactly (PEFT casts x to the adapter's dtype), the
  // products accumulate in fp32, alpha and beta apply in fp32, out is rounded once. With
  // beta == 0, out is not read (it may hold NaN).
  virtual void gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha,
                    float beta) = 0;

  // In place, HF's rotate-half RoPE: x = x*cos + rotate_half(x)*sin for q[T, H, D] and
  // k[T, KVH, D], with cos/sin taken from `table` at positions[t] (I32 [T], each in [0, P)).
  // cos and sin are rounded to the activation dtype first, and in 16-bit dtypes each product
  // and the sum are rounded, as transformers does. Positions per token let packed sequences
  // restart at 0 and let a KV cache continue at its length. A position outside [0, P) throws
  // (on a GPU at the next synchronize()).
  virtual void rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) = 0;

  // In place on the gradients dq[T, H, D] and dk[T, KVH, D]: the rotation by the negative
  // angle, dx1 = dy1*c + dy2*s, dx2 = dy2*c - dy1*s, with the forward's roundings (cos/sin in
  // the dtype, each product and the sum rounded in 16-bit dtypes), as autograd computes it.
  virtual void rope_backward(Tensor& dq, Tensor& dk, const Tensor& positions, const RopeTable& table) = 0;

  // Causal grouped-query attention. out[T, H, D] from q[T, H, D], k[S, KVH, D], v[S, KVH, D]
  // with S >= T: key s is at position s and query t at position S - T + t (the first S - T keys
  // come from a KV cache), so query t sees keys [0, S - T + t]. Query head h reads kv head
  // h / (H / KVH) (HF's repeat_kv). Scale 1/sqrt(D); scores and softmax in fp32; the output
  // rounded once to the activation dtype. One sequence per call (inference, with a KV cache);
  // training uses attention_packed_forward.
  virtual void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) = 0;

  // attention_forward over a whole KV cache, with each query's position read from the device:
  // out[T, H, D] from q[T, H, D] and k, v [P, KVH, D] (every cache row), query t seeing keys
  // [0, positions[t]] (I32 [T], each in [0, P)). With positions S - T .. S - 1 this is
  // attention_forward over the first S rows, bit for bit; here the number of keys may change
  // between replays of a recorded decode step (record()). A position outside [0, P) throws (on a
  // GPU at the next synchronize()) and that query's output is not written.
  virtual void attention_cached_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& positions) = 0;

  // The new tokens' keys and values into a KV cache at positions read from the device:
  // k_cache[positions[t]] = k[t] and v_cache[positions[t]] = v[t], exact copies. k_cache, v_cache
  // [P, KVH, D]; k, v [T, KVH, D]; positions I32 [T], each in [0, P) (else throws, on a GPU at the
  // next synchronize(), and that token is not written).
  virtual void kv_cache_write(Tensor& k_cache, Tensor& v_cache, const Tensor& k, const Tensor& v,
                              const Tensor& positions) = 0;

  // Training attention over packed sequences, no cache: out[T, H, D] from q[T, H, D] and
  // k/v[T, KVH, D]; seq_ids I32 [T] tags each token, a sequence is a maximal run of equal
  // consecutive ids (as packing lays them out), and query t sees the keys of its own sequence
  // up to itself (causal within the sequence). Otherwise as attention_forward. lse, when not null, receives the fp32
  // log-sum-exp of each row's scaled scores, F32 [H, T], for attention_packed_backward.
  virtual void attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& seq_ids) = 0;

  // dq[T, H, D], dk[T, KVH, D], dv[T, KVH, D] from dout[T, H, D] and the forward's q, k, v, out
  // and lse F32 [H, T] (same seq_ids). The probabilities are recomputed from lse; with
  // delta[t] = sum(dout[t] * out[t]) (the stored, rounded out), ds = p * (dout . v - delta) and
  // dq = scale * ds @ k, dk = scale * ds^T @ q, dv = p^T @ dout, dk and dv summed over the H/KVH
  // query heads of their group. fp32 throughout, each gradient rounded once.
  virtual void attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                         const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                         const Tensor& seq_ids) = 0;

  // out[T, F] = to_dtype(silu(gate)) * up, as HF's LlamaMLP: silu in fp32 rounded to the
  // activation dtype, then the product rounded again. gate and up [T, F].
  virtual void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) = 0;

  // dgate, dup [T, F] from dout, gate, up [T, F]: dup = dout * to_dtype(silu(gate)) (the
  // forward's rounded activation) and dgate = dout * up * silu'(gate), silu'(g) =
  // sigmoid(g) * (1 + g * (1 - sigmoid(g))), in fp32, each output rounded once.
  virtual void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                               const Tensor& up) = 0;

  // Token cross-entropy over logits[T, V] (F32, or a 16-bit dtype widened exactly) with
  // labels I32 [T]: labels[t] is row t's target (already shifted), -100 ignores the row, any
  // other label outside [0, V) throws (on a GPU at the next synchronize()). losses F32 [T]
  // receives logsumexp(row) - row[label] (0 for ignored rows), in fp32 with the max
  // subtracted. dlogits, when not null, receives (softmax(row) - onehot(label)) * grad_scale
  // (zeros for ignored rows), rounded once to its dtype; it may be the logits tensor itself
  // (in place). For torch's reduction="mean" the caller passes grad_scale = 1 / (non-ignored
  // tokens of the whole batch) and sums losses with the same factor, so the batch can be fed
  // in chunks of tokens (hidden rows @ lm_head^T per chunk) and [T, V] never held whole.
  virtual void cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels,
                             float grad_scale) = 0;

  // A recorded sequence of ops (record()).
  class Recording {
   public:
    virtual ~Recording() = default;
  };
  // Records the ops that `ops` issues on this backend so that replay() issues them again as one
  // unit; nothing runs now. Every replay runs the same ops on the same tensors (whose contents may
  // have changed in between), so `ops` must not allocate device memory, copy between the host and
  // the device, or synchronize. This version keeps `ops` and calls it at each replay; the CUDA
  // backend captures a CUDA graph, so a decode step's few hundred kernels cost one launch. Throws
  // when the ops cannot be recorded; the caller then issues them directly.
  virtual std::unique_ptr<Recording> record(std::function<void()> ops);
  virtual void replay(Recording& recording);
};

// The reference backend: plain loops, OpenBLAS for GEMM.
std::unique_ptr<Backend> make_cpu_backend();

// The GPU backend on the current CUDA device. Throws nibble::Error when this build has no CUDA
// or no GPU is visible.
std::unique_ptr<Backend> make_cuda_backend();

// The backend for `device`.
std::unique_ptr<Backend> make_backend(Device device);

}  // namespace nibble
