#include "nibble/backend/op_checks.h"

#include <cmath>
#include <utility>

namespace nibble {

bool is_activation_dtype(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16;
}

namespace {

void check_on(const char* op, const char* name, const Tensor& t, Device device) {
  NIBBLE_CHECK(t.defined(), "{}: {} is an undefined tensor", op, name);
  NIBBLE_CHECK(t.device() == device, "{}: {} is {}, expected a tensor on {}", op, name, t.describe(),
               device_name(device));
}

void check_activation(const char* op, const char* name, const Tensor& t, Device device) {
  check_on(op, name, t, device);
  NIBBLE_CHECK(is_activation_dtype(t.dtype()), "{}: {} is {}, expected F32, F16 or BF16", op, name,
               t.describe());
}

void check_rank(const char* op, const char* name, const Tensor& t, size_t rank, const char* letters) {
  NIBBLE_CHECK(t.rank() == rank, "{}: {} is {}, expected shape {}", op, name, t.describe(), letters);
}

void check_shape(const char* op, const char* name, const Tensor& t, const Shape& shape, const char* letters) {
  NIBBLE_CHECK(t.shape() == shape, "{}: {} is {}, expected {} = {}", op, name, t.describe(), letters,
               shape_to_string(shape));
}

void check_same_dtype(const char* op, const char* name, const Tensor& t, DType dtype) {
  NIBBLE_CHECK(t.dtype() == dtype, "{}: {} is {}, expected dtype {} (the activation dtype)", op, name,
               t.describe(), dtype_safetensors_name(dtype));
}

}  // namespace

RowsDims check_embedding_forward(Device device, const Tensor& out, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding_forward";
  check_on(op, "ids", ids, device);
  NIBBLE_CHECK(ids.dtype() == DType::i32 && ids.rank() == 1, "{}: ids is {}, expected I32 [T]", op,
               ids.describe());
  check_activation(op, "table", table, device);
  check_rank(op, "table", table, 2, "[V, C]");
  check_activation(op, "out", out, device);
  check_same_dtype(op, "out", out, table.dtype());
  RowsDims d{ids.dim(0), table.dim(1)};
  check_shape(op, "out", out, {d.T, d.C}, "[T, C]");
  return d;
}

int64_t check_elementwise(const char* op, Device device, const Tensor& out, const Tensor& a, const Tensor& b) {
  check_activation(op, "first input", a, device);
  check_activation(op, "second input", b, device);
  check_activation(op, "out", out, device);
  check_same_dtype(op, "second input", b, a.dtype());
  check_same_dtype(op, "out", out, a.dtype());
  check_shape(op, "second input", b, a.shape(), "the first input's shape");
  check_shape(op, "out", out, a.shape(), "the inputs' shape");
  return a.numel();
}

int64_t check_cast(Device device, const Tensor& out, const Tensor& in) {
  check_activation("cast", "in", in, device);
  check_activation("cast", "out", out, device);
  check_shape("cast", "out", out, in.shape(), "the input's shape");
  return in.numel();
}

int64_t check_dropout(Device device, const Tensor& out, const Tensor& in, float p) {
  check_activation("dropout", "in", in, device);
  check_activation("dropout", "out", out, device);
  check_shape("dropout", "out", out, in.shape(), "the input's shape");
  NIBBLE_CHECK(p >= 0.0f && p < 1.0f, "dropout: p = {}, expected a probability in [0, 1)", p);
  return in.numel();
}

namespace {

void check_f32(const char* op, const char* name, const Tensor& t, const Shape& shape, const char* letters,
               Device device) {
  check_on(op, name, t, device);
  NIBBLE_CHECK(t.dtype() == DType::f32 && t.shape() == shape, "{}: {} is {}, expected F32 {} = {}", op, name,
               t.describe(), letters, shape_to_string(shape));
}

void check_ids(const char* op, const char* name, const Tensor& t, int64_t T, Device device) {
  check_on(op, name, t, device);
  NIBBLE_CHECK(t.dtype() == DType::i32 && t.shape() == Shape{T}, "{}: {} is {}, expected I32 [T] = [{}]", op, name,
               t.describe(), T);
}

RowsDims check_rmsnorm(const char* op, const char* out_name, Device device, const Tensor& out, const Tensor& x,
                       const Tensor& weight, float eps) {
  check_activation(op, "x", x, device);
  check_rank(op, "x", x, 2, "[T, C]");
  RowsDims d{x.dim(0), x.dim(1)};
  NIBBLE_CHECK(d.C > 0, "{}: x is {}, expected C > 0", op, x.describe());
  check_activation(op, "weight", weight, device);
  check_same_dtype(op, "weight", weight, x.dtype());
  check_shape(op, "weight", weight, {d.C}, "[C]");
  check_activation(op, out_name, out, device);
  check_same_dtype(op, out_name, out, x.dtype());
  check_shape(op, out_name, out, {d.T, d.C}, "[T, C]");
  NIBBLE_CHECK(std::isfinite(eps) && eps >= 0, "{}: eps must be finite and >= 0, got {}", op, eps);
  return d;
}

RopeDims check_rope(const char* op, Device device, const Tensor& q, const Tensor& k, const Tensor& positions,
                    const RopeTable& table) {
  check_activation(op, "q", q, device);
  check_rank(op, "q", q, 3, "[T, H, D]");
  check_activation(op, "k", k, device);
  check_rank(op, "k", k, 3, "[T, KVH, D]");
  check_same_dtype(op, "k", k, q.dtype());
  RopeDims d{q.dim(0), q.dim(1), k.dim(1), q.dim(2)};
  NIBBLE_CHECK(k.dim(0) == d.T && k.dim(2) == d.D, "{}: k is {} and q is {}, expected k [T, KVH, D] = [{}, KVH, {}]",
               op, k.describe(), q.describe(), d.T, d.D);
  check_on(op, "positions", positions, device);
  NIBBLE_CHECK(positions.dtype() == DType::i32 && positions.shape() == Shape{d.T},
               "{}: positions is {}, expected I32 [T] = [{}]", op, positions.describe(), d.T);
  check_on(op, "table.cos", table.cos, device);
  check_on(op, "table.sin", table.sin, device);
  NIBBLE_CHECK(table.cos.dtype() == DType::f32 && table.sin.dtype() == DType::f32 && table.cos.rank() == 2 &&
                   table.sin.shape() == table.cos.shape(),
               "{}: table is cos {} and sin {}, expected two F32 [P, D/2]", op, table.cos.describe(),
               table.sin.describe());
  NIBBLE_CHECK(table.head_dim() == d.D, "{}: the table was built for head_dim {}, q has D = {}", op,
               table.head_dim(), d.D);
  return d;
}

// q [T, H, D], k and v [S, KVH, D] in one activation dtype, H a multiple of KVH.
AttentionDims check_attention_inputs(const char* op, Device device, const Tensor& q, const Tensor& k,
                                     const Tensor& v) {
  check_activation(op, "q", q, device);
  check_rank(op, "q", q, 3, "[T, H, D]");
  check_activation(op, "k", k, device);
  check_rank(op, "k", k, 3, "[S, KVH, D]");
  check_same_dtype(op, "k", k, q.dtype());
  AttentionDims d{q.dim(0), k.dim(0), q.dim(1), k.dim(1), q.dim(2)};
  NIBBLE_CHECK(k.dim(2) == d.D, "{}: k is {}, expected [S, KVH, D] with D = {} as q", op, k.describe(), d.D);
  NIBBLE_CHECK(d.KVH > 0 && d.H % d.KVH == 0, "{}: q has {} heads and k {}, expected H a multiple of KVH", op,
               d.H, d.KVH);
  NIBBLE_CHECK(d.S >= d.T, "{}: k has S = {} keys for T = {} queries, expected S >= T (the new tokens' keys last)",
               op, d.S, d.T);
  check_activation(op, "v", v, device);
  check_same_dtype(op, "v", v, q.dtype());
  check_shape(op, "v", v, k.shape(), "k's shape [S, KVH, D]");
  return d;
}

// Packed training attention: no cache (S == T) and one sequence id per token.
AttentionDims check_attention_packed_inputs(const char* op, Device device, const Tensor& q, const Tensor& k,
                                            const Tensor& v, const Tensor& seq_ids) {
  AttentionDims d = check_attention_inputs(op, device, q, k, v);
  NIBBLE_CHECK(d.S == d.T, "{}: k has S = {} keys for T = {} queries, expected S == T (no KV cache in training)", op,
               d.S, d.T);
  check_ids(op, "seq_ids", seq_ids, d.T, device);
  return d;
}

}  // namespace

RowsDims check_rmsnorm_forward(Device device, const Tensor& out, const Tensor& x, const Tensor& weight, float eps,
                               const Tensor* rstd) {
  RowsDims d = check_rmsnorm("rmsnorm_forward", "out", device, out, x, weight, eps);
  if (rstd != nullptr) check_f32("rmsnorm_forward", "rstd", *rstd, {d.T}, "[T]", device);
  return d;
}

RowsDims check_rmsnorm_backward(Device device, const Tensor& dx, const Tensor& dy, const Tensor& x,
                                const Tensor& weight, const Tensor* rstd, float eps) {
  const char* op = "rmsnorm_backward";
  RowsDims d = check_rmsnorm(op, "dx", device, dx, x, weight, eps);
  check_activation(op, "dy", dy, device);
  check_same_dtype(op, "dy", dy, x.dtype());
  check_shape(op, "dy", dy, {d.T, d.C}, "[T, C]");
  if (rstd != nullptr) check_f32(op, "rstd", *rstd, {d.T}, "[T]", device);
  return d;
}

LinearDims check_linear_backward(Device device, const Tensor& dx, const Tensor& dy, const Tensor& w) {
  const char* op = "linear_backward";
  check_activation(op, "dy", dy, device);
  check_rank(op, "dy", dy, 2, "[T, N]");
  check_activation(op, "w", w, device);
  check_rank(op, "w", w, 2, "[N, K]");
  check_same_dtype(op, "w", w, dy.dtype());
  LinearDims d{dy.dim(0), w.dim(1), dy.dim(1)};
  NIBBLE_CHECK(w.dim(0) == d.N, "{}: w is {} and dy is {}, expected w [N, K] with N = {}", op, w.describe(),
               dy.describe(), d.N);
  check_activation(op, "dx", dx, device);
  check_same_dtype(op, "dx", dx, dy.dtype());
  check_shape(op, "dx", dx, {d.T, d.K}, "[T, K]");
  return d;
}

GemmDims check_gemm(Device device, const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b) {
  const char* op = "gemm";
  check_activation(op, "a", a, device);
  check_rank(op, "a", a, 2, trans_a ? "[K, M] (trans_a)" : "[M, K]");
  check_activation(op, "b", b, device);
  check_rank(op, "b", b, 2, trans_b ? "[N, K] (trans_b)" : "[K, N]");
  const GemmDims d{trans_a ? a.dim(1) : a.dim(0), trans_b ? b.dim(0) : b.dim(1), trans_a ? a.dim(0) : a.dim(1)};
  const int64_t b_k = trans_b ? b.dim(1) : b.dim(0);
  NIBBLE_CHECK(b_k == d.K, "{}: a is {}{} and b is {}{}, expected op(a) [M, K] and op(b) [K, N] with K = {}", op,
               a.describe(), trans_a ? " (transposed)" : "", b.describe(), trans_b ? " (transposed)" : "", d.K);
  check_activation(op, "out", out, device);
  check_shape(op, "out", out, {d.M, d.N}, "[M, N]");
  return d;
}

LinearDims check_linear_forward(Device device, const Tensor& y, const Tensor& x, const Tensor& w,
                                const Tensor* bias) {
  const char* op = "linear_forward";
  check_activation(op, "x", x, device);
  check_rank(op, "x", x, 2, "[T, K]");
  check_activation(op, "w", w, device);
  check_rank(op, "w", w, 2, "[N, K]");
  check_same_dtype(op, "w", w, x.dtype());
  LinearDims d{x.dim(0), x.dim(1), w.dim(0)};
  NIBBLE_CHECK(w.dim(1) == d.K, "{}: w is {} and x is {}, expected w [N, K] with K = {}", op, w.describe(),
               x.describe(), d.K);
  if (bias != nullptr) {
    check_activation(op, "bias", *bias, device);
    check_same_dtype(op, "bias", *bias, x.dtype());
    check_shape(op, "bias", *bias, {d.N}, "[N]");
  }
  check_activation(op, "y", y, device);
  check_same_dtype(op, "y", y, x.dtype());
  check_shape(op, "y", y, {d.T, d.N}, "[T, N]");
  return d;
}

RopeDims check_rope_forward(Device device, const Tensor& q, const Tensor& k, const Tensor& positions,
                            const RopeTable& table) {
  return check_rope("rope_forward", device, q, k, positions, table);
}

RopeDims check_rope_backward(Device device, const Tensor& dq, const Tensor& dk, const Tensor& positions,
                             const RopeTable& table) {
  return check_rope("rope_backward", device, dq, dk, positions, table);
}

AttentionDims check_attention_forward(Device device, const Tensor& out, const Tensor& q, const Tensor& k,
                                      const Tensor& v) {
  const char* op = "attention_forward";
  AttentionDims d = check_attention_inputs(op, device, q, k, v);
  check_activation(op, "out", out, device);
  check_same_dtype(op, "out", out, q.dtype());
  check_shape(op, "out", out, q.shape(), "q's shape [T, H, D]");
  return d;
}

AttentionDims check_attention_cached_forward(Device device, const Tensor& out, const Tensor& q, const Tensor& k,
                                             const Tensor& v, const Tensor& positions) {
  const char* op = "attention_cached_forward";
  AttentionDims d = check_attention_inputs(op, device, q, k, v);
  check_activation(op, "out", out, device);
  check_same_dtype(op, "out", out, q.dtype());
  check_shape(op, "out", out, q.shape(), "q's shape [T, H, D]");
  check_ids(op, "positions", positions, d.T, device);
  return d;
}

AttentionDims check_kv_cache_write(Device device, const Tensor& k_cache, const Tensor& v_cache, const Tensor& k,
                                   const Tensor& v, const Tensor& positions) {
  const char* op = "kv_cache_write";
  check_activation(op, "k_cache", k_cache, device);
  check_rank(op, "k_cache", k_cache, 3, "[P, KVH, D]");
  check_activation(op, "v_cache", v_cache, device);
  check_same_dtype(op, "v_cache", v_cache, k_cache.dtype());
  check_shape(op, "v_cache", v_cache, k_cache.shape(), "k_cache's shape [P, KVH, D]");
  check_activation(op, "k", k, device);
  check_same_dtype(op, "k", k, k_cache.dtype());
  check_rank(op, "k", k, 3, "[T, KVH, D]");
  AttentionDims d{k.dim(0), k_cache.dim(0), k_cache.dim(1), k_cache.dim(1), k_cache.dim(2)};
  check_shape(op, "k", k, {d.T, d.KVH, d.D}, "[T, KVH, D] with k_cache's KVH and D");
  check_activation(op, "v", v, device);
  check_same_dtype(op, "v", v, k_cache.dtype());
  check_shape(op, "v", v, k.shape(), "k's shape [T, KVH, D]");
  check_ids(op, "positions", positions, d.T, device);
  return d;
}

AttentionDims check_attention_packed_forward(Device device, const Tensor& out, const Tensor* lse, const Tensor& q,
                                             const Tensor& k, const Tensor& v, const Tensor& seq_ids) {
  const char* op = "attention_packed_forward";
  AttentionDims d = check_attention_packed_inputs(op, device, q, k, v, seq_ids);
  check_activation(op, "out", out, device);
  check_same_dtype(op, "out", out, q.dtype());
  check_shape(op, "out", out, q.shape(), "q's shape [T, H, D]");
  if (lse != nullptr) check_f32(op, "lse", *lse, {d.H, d.T}, "[H, T]", device);
  return d;
}

AttentionDims check_attention_packed_backward(Device device, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                              const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                              const Tensor& out, const Tensor& lse, const Tensor& seq_ids) {
  const char* op = "attention_packed_backward";
  AttentionDims d = check_attention_packed_inputs(op, device, q, k, v, seq_ids);
  const std::pair<const char*, const Tensor*> like_q[] = {{"out", &out}, {"dout", &dout}, {"dq", &dq}};
  for (const auto& [name, t] : like_q) {
    check_activation(op, name, *t, device);
    check_same_dtype(op, name, *t, q.dtype());
    check_shape(op, name, *t, q.shape(), "q's shape [T, H, D]");
  }
  const std::pair<const char*, const Tensor*> like_k[] = {{"dk", &dk}, {"dv", &dv}};
  for (const auto& [name, t] : like_k) {
    check_activation(op, name, *t, device);
    check_same_dtype(op, name, *t, q.dtype());
    check_shape(op, name, *t, k.shape(), "k's shape [T, KVH, D]");
  }
  check_f32(op, "lse", lse, {d.H, d.T}, "[H, T]", device);
  return d;
}

int64_t check_swiglu_backward(Device device, const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                              const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_backward";
  check_activation(op, "gate", gate, device);
  const std::pair<const char*, const Tensor*> others[] = {{"up", &up}, {"dout", &dout}, {"dgate", &dgate}, {"dup", &dup}};
  for (const auto& [name, t] : others) {
    check_activation(op, name, *t, device);
    check_same_dtype(op, name, *t, gate.dtype());
    check_shape(op, name, *t, gate.shape(), "gate's shape [T, F]");
  }
  return gate.numel();
}

RowsDims check_cross_entropy(Device device, const Tensor& losses, const Tensor* dlogits, const Tensor& logits,
                             const Tensor& labels) {
  const char* op = "cross_entropy";
  check_activation(op, "logits", logits, device);
  check_rank(op, "logits", logits, 2, "[T, V]");
  RowsDims d{logits.dim(0), logits.dim(1)};
  NIBBLE_CHECK(d.C > 0, "{}: logits is {}, expected V > 0", op, logits.describe());
  check_ids(op, "labels", labels, d.T, device);
  check_f32(op, "losses", losses, {d.T}, "[T]", device);
  if (dlogits != nullptr) {
    check_activation(op, "dlogits", *dlogits, device);
    check_shape(op, "dlogits", *dlogits, logits.shape(), "logits' shape [T, V]");
  }
  return d;
}

}  // namespace nibble
