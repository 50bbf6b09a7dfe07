#include "nibble/backend/op_checks.h"

#include <cmath>

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

RowsDims check_rmsnorm_forward(Device device, const Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  const char* op = "rmsnorm_forward";
  check_activation(op, "x", x, device);
  check_rank(op, "x", x, 2, "[T, C]");
  RowsDims d{x.dim(0), x.dim(1)};
  NIBBLE_CHECK(d.C > 0, "{}: x is {}, expected C > 0", op, x.describe());
  check_activation(op, "weight", weight, device);
  check_same_dtype(op, "weight", weight, x.dtype());
  check_shape(op, "weight", weight, {d.C}, "[C]");
  check_activation(op, "out", out, device);
  check_same_dtype(op, "out", out, x.dtype());
  check_shape(op, "out", out, {d.T, d.C}, "[T, C]");
  NIBBLE_CHECK(std::isfinite(eps) && eps >= 0, "{}: eps must be finite and >= 0, got {}", op, eps);
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
  const char* op = "rope_forward";
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

AttentionDims check_attention_forward(Device device, const Tensor& out, const Tensor& q, const Tensor& k,
                                      const Tensor& v) {
  const char* op = "attention_forward";
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
  check_activation(op, "out", out, device);
  check_same_dtype(op, "out", out, q.dtype());
  check_shape(op, "out", out, q.shape(), "q's shape [T, H, D]");
  return d;
}

}  // namespace nibble
