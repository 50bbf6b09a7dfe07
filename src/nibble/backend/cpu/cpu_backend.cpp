// The reference backend: each op widens its inputs to float, computes with plain loops, and
// rounds to the activation dtype exactly where transformers rounds. Reductions (sums of
// squares, dot products, softmax sums) accumulate in double, so the reference is at least as
// accurate as any fp32 kernel it checks; GEMM is OpenBLAS sgemm on float copies.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "nibble/backend/backend.h"
#include "nibble/backend/cpu/cpu_backward.h"
#include "nibble/backend/linear_4bit.h"
#include "nibble/backend/op_checks.h"
#include "nibble/core/half.h"
#include "nibble/core/rng.h"

namespace nibble {

namespace cpu {

std::vector<float> to_floats(const Tensor& t) {
  const int64_t n = t.numel();
  std::vector<float> out(n);
  switch (t.dtype()) {
    case DType::f32:
      if (n > 0) std::memcpy(out.data(), t.data(), n * sizeof(float));
      break;
    case DType::bf16: {
      const bf16_t* in = t.data_as<bf16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
      break;
    }
    case DType::f16: {
      const fp16_t* in = t.data_as<fp16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(in[i]);
      break;
    }
    default:
      fail("cpu backend: {} is not an activation dtype", t.describe());
  }
  return out;
}

// Rounds one float to `dtype` and back: the value a tensor of that dtype would hold.
float round_to(DType dtype, float x) {
  if (dtype == DType::bf16) return bf16_to_float(float_to_bf16(x));
  if (dtype == DType::f16) return fp16_to_float(float_to_fp16(x));
  return x;
}

void store_floats(Tensor& t, const std::vector<float>& values) {
  const int64_t n = t.numel();
  NIBBLE_ASSERT(static_cast<int64_t>(values.size()) == n);
  switch (t.dtype()) {
    case DType::f32:
      if (n > 0) std::memcpy(t.data(), values.data(), n * sizeof(float));
      break;
    case DType::bf16: {
      bf16_t* out = t.data_as<bf16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16(values[i]);
      break;
    }
    case DType::f16: {
      fp16_t* out = t.data_as<fp16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = float_to_fp16(values[i]);
      break;
    }
    default:
      fail("cpu backend: {} is not an activation dtype", t.describe());
  }
}

}  // namespace cpu

namespace {

using cpu::round_to;
using cpu::store_floats;
using cpu::to_floats;

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu; }
  std::string_view name() const override { return "cpu"; }
  void synchronize() override {}

  void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) override {
    RowsDims d = check_embedding_forward(Device::cpu, out, ids, table);
    const int64_t vocab = table.dim(0);
    const size_t row_bytes = static_cast<size_t>(d.C) * dtype_size(table.dtype());
    const int32_t* id = ids.data_as<int32_t>();
    for (int64_t t = 0; t < d.T; ++t) {
      NIBBLE_CHECK(id[t] >= 0 && id[t] < vocab, "embedding_forward: token {} has id {}, expected an id in [0, {})",
                   t, id[t], vocab);
      std::memcpy(static_cast<char*>(out.data()) + t * row_bytes,
                  static_cast<const char*>(table.data()) + id[t] * row_bytes, row_bytes);
    }
  }

  void add_forward(Tensor& out, const Tensor& a, const Tensor& b) override {
    int64_t n = check_elementwise("add_forward", Device::cpu, out, a, b);
    std::vector<float> x = to_floats(a), y = to_floats(b);
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
    store_floats(out, x);
  }

  void cast(Tensor& out, const Tensor& in) override {
    check_cast(Device::cpu, out, in);
    store_floats(out, to_floats(in));
  }

  void dropout(Tensor& out, const Tensor& in, float p, uint64_t seed, uint64_t stream) override {
    const int64_t n = check_dropout(Device::cpu, out, in, p);
    const float scale = 1.0f / (1.0f - p);
    std::vector<float> v = to_floats(in);
    for (int64_t i = 0; i < n; ++i)
      v[i] = philox_uniform_at(seed, stream, static_cast<uint64_t>(i)) >= p ? v[i] * scale : 0.0f;
    store_floats(out, v);
  }

  void rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) override {
    RowsDims d = check_rmsnorm_forward(Device::cpu, out, x, weight, eps, rstd);
    const DType dtype = x.dtype();
    std::vector<float> v = to_floats(x), w = to_floats(weight);
    for (int64_t t = 0; t < d.T; ++t) {
      float* row = v.data() + t * d.C;
      const float r = cpu::rmsnorm_rstd(row, d.C, eps);
      if (rstd != nullptr) rstd->data_as<float>()[t] = r;
      for (int64_t c = 0; c < d.C; ++c) row[c] = round_to(dtype, round_to(dtype, row[c] * r) * w[c]);
    }
    store_floats(out, v);
  }

  void rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor* rstd,
                        float eps) override {
    cpu::rmsnorm_backward(dx, dy, x, weight, rstd, eps);
  }

  void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override {
    LinearDims d = check_linear_forward(Device::cpu, y, x, w, bias);
    std::vector<float> a = to_floats(x), b = to_floats(w), c(d.T * d.N, 0.0f);
    if (d.T > 0 && d.N > 0 && d.K > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(d.T), static_cast<int>(d.N),
                  static_cast<int>(d.K), 1.0f, a.data(), static_cast<int>(d.K), b.data(), static_cast<int>(d.K),
                  0.0f, c.data(), static_cast<int>(d.N));
    if (bias != nullptr) {
      std::vector<float> bv = to_floats(*bias);
      for (int64_t t = 0; t < d.T; ++t)
        for (int64_t n = 0; n < d.N; ++n) c[t * d.N + n] += bv[n];
    }
    store_floats(y, c);
  }

  void linear_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                           Tensor& workspace) override {
    linear_4bit_forward_with(*this, nullptr, y, x, w, bias, workspace);
  }

  void linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w) override { cpu::linear_backward(dx, dy, w); }

  void linear_4bit_backward(Tensor& dx, const Tensor& dy, const QuantizedWeight& w, Tensor& workspace) override {
    linear_4bit_backward_with(*this, nullptr, dx, dy, w, workspace);
  }

  void gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha,
            float beta) override {
    cpu::gemm(out, a, trans_a, b, trans_b, alpha, beta);
  }

  void rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) override {
    RopeDims d = check_rope_forward(Device::cpu, q, k, positions, table);
    const int32_t* pos = positions.data_as<int32_t>();
    for (int64_t t = 0; t < d.T; ++t)
      NIBBLE_CHECK(pos[t] >= 0 && pos[t] < table.positions(),
                   "rope_forward: token {} has position {}, expected a position in [0, {}) (the table's length)", t,
                   pos[t], table.positions());
    rotate(q, d.T, d.H, d.D, pos, table, 1.0f);
    rotate(k, d.T, d.KVH, d.D, pos, table, 1.0f);
  }

  // The transpose of the rotation is the rotation by -angle: the forward with sin negated
  // (negating is exact, so the roundings land where autograd's do).
  void rope_backward(Tensor& dq, Tensor& dk, const Tensor& positions, const RopeTable& table) override {
    RopeDims d = check_rope_backward(Device::cpu, dq, dk, positions, table);
    const int32_t* pos = positions.data_as<int32_t>();
    for (int64_t t = 0; t < d.T; ++t)
      NIBBLE_CHECK(pos[t] >= 0 && pos[t] < table.positions(),
                   "rope_backward: token {} has position {}, expected a position in [0, {}) (the table's length)", t,
                   pos[t], table.positions());
    rotate(dq, d.T, d.H, d.D, pos, table, -1.0f);
    rotate(dk, d.T, d.KVH, d.D, pos, table, -1.0f);
  }

  void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) override {
    AttentionDims d = check_attention_forward(Device::cpu, out, q, k, v);
    attend(out, q, k, v, d, [&](int64_t t) { return d.S - d.T + t + 1; });  // keys [0, S - T + t]
  }

  void attention_cached_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& positions) override {
    AttentionDims d = check_attention_cached_forward(Device::cpu, out, q, k, v, positions);
    const int32_t* pos = positions.data_as<int32_t>();
    for (int64_t t = 0; t < d.T; ++t)
      NIBBLE_CHECK(pos[t] >= 0 && pos[t] < d.S,
                   "attention_cached_forward: token {} has position {}, expected a position in [0, {}) (the "
                   "cache's rows)", t, pos[t], d.S);
    int64_t rows = 1;  // keys any query sees
    for (int64_t t = 0; t < d.T; ++t) rows = std::max<int64_t>(rows, pos[t] + 1);
    AttentionDims read = d;
    read.S = rows;
    attend(out, q, leading_rows(k, rows), leading_rows(v, rows), read,
           [&](int64_t t) { return static_cast<int64_t>(pos[t]) + 1; });
  }

  void kv_cache_write(Tensor& k_cache, Tensor& v_cache, const Tensor& k, const Tensor& v,
                      const Tensor& positions) override {
    AttentionDims d = check_kv_cache_write(Device::cpu, k_cache, v_cache, k, v, positions);
    const int32_t* pos = positions.data_as<int32_t>();
    for (int64_t t = 0; t < d.T; ++t)
      NIBBLE_CHECK(pos[t] >= 0 && pos[t] < d.S,
                   "kv_cache_write: token {} has position {}, expected a position in [0, {}) (the cache's rows)", t,
                   pos[t], d.S);
    const size_t row_bytes = static_cast<size_t>(d.KVH * d.D) * dtype_size(k.dtype());
    for (int64_t t = 0; t < d.T; ++t) {
      std::memcpy(static_cast<char*>(k_cache.data()) + pos[t] * row_bytes,
                  static_cast<const char*>(k.data()) + t * row_bytes, row_bytes);
      std::memcpy(static_cast<char*>(v_cache.data()) + pos[t] * row_bytes,
                  static_cast<const char*>(v.data()) + t * row_bytes, row_bytes);
    }
  }

  void attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& seq_ids) override {
    cpu::attention_packed_forward(out, lse, q, k, v, seq_ids);
  }

  void attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                 const Tensor& seq_ids) override {
    cpu::attention_packed_backward(dq, dk, dv, dout, q, k, v, out, lse, seq_ids);
  }

  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override {
    int64_t n = check_elementwise("swiglu_forward", Device::cpu, out, gate, up);
    const DType dtype = gate.dtype();
    std::vector<float> g = to_floats(gate), u = to_floats(up);
    for (int64_t i = 0; i < n; ++i) {
      float silu = g[i] / (1.0f + std::exp(-g[i]));
      g[i] = round_to(dtype, round_to(dtype, silu) * u[i]);
    }
    store_floats(out, g);
  }

  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    cpu::swiglu_backward(dgate, dup, dout, gate, up);
  }

  void cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels,
                     float grad_scale) override {
    cpu::cross_entropy(losses, dlogits, logits, labels, grad_scale);
  }

 private:
  // x[T, heads, D] in place: x1' = x1*c - x2*s, x2' = x2*c + x1*s with x1 = x[j], x2 = x[j + D/2],
  // cos/sin rounded to the dtype, each product and the sum rounded (identity for F32). sin_sign
  // -1 rotates by the negative angle (rope_backward).
  static void rotate(Tensor& x, int64_t T, int64_t heads, int64_t D, const int32_t* pos, const RopeTable& table,
                     float sin_sign) {
    const DType dtype = x.dtype();
    const int64_t half = D / 2;
    std::vector<float> v = to_floats(x);
    const float* cos_table = table.cos.data_as<float>();
    const float* sin_table = table.sin.data_as<float>();
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        float* row = &v[(t * heads + h) * D];
        for (int64_t j = 0; j < half; ++j) {
          const float c = round_to(dtype, cos_table[pos[t] * half + j]);
          const float s = sin_sign * round_to(dtype, sin_table[pos[t] * half + j]);
          const float x1 = row[j], x2 = row[j + half];
          row[j] = round_to(dtype, round_to(dtype, x1 * c) + round_to(dtype, -x2 * s));
          row[j + half] = round_to(dtype, round_to(dtype, x2 * c) + round_to(dtype, x1 * s));
        }
      }
    }
    store_floats(x, v);
  }

  // Causal attention of the T queries over the key rows k, v [S, KVH, D]: query t sees the first
  // visible(t) keys. Scores and softmax in double, as the rest of the reference.
  template <typename Visible>
  static void attend(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionDims& d,
                     Visible visible_keys) {
    std::vector<float> qf = to_floats(q), kf = to_floats(k), vf = to_floats(v), of(d.T * d.H * d.D);
    const int64_t group = d.H / d.KVH;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
    std::vector<float> score(d.S);
    std::vector<double> acc(d.D);
    for (int64_t t = 0; t < d.T; ++t) {
      const int64_t visible = visible_keys(t);
      for (int64_t h = 0; h < d.H; ++h) {
        const int64_t kvh = h / group;
        const float* qrow = &qf[(t * d.H + h) * d.D];
        float max_score = -INFINITY;
        for (int64_t s = 0; s < visible; ++s) {
          const float* krow = &kf[(s * d.KVH + kvh) * d.D];
          double dot = 0;
          for (int64_t i = 0; i < d.D; ++i) dot += static_cast<double>(qrow[i]) * krow[i];
          score[s] = static_cast<float>(dot) * scale;
          max_score = std::max(max_score, score[s]);
        }
        double sum = 0;
        for (int64_t s = 0; s < visible; ++s) sum += std::exp(static_cast<double>(score[s] - max_score));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t s = 0; s < visible; ++s) {
          const float p = static_cast<float>(std::exp(static_cast<double>(score[s] - max_score)) / sum);
          const float* vrow = &vf[(s * d.KVH + kvh) * d.D];
          for (int64_t i = 0; i < d.D; ++i) acc[i] += static_cast<double>(p) * vrow[i];
        }
        for (int64_t i = 0; i < d.D; ++i) of[(t * d.H + h) * d.D + i] = static_cast<float>(acc[i]);
      }
    }
    store_floats(out, of);
  }

  // The first `rows` rows of a [P, ...] tensor, sharing its storage (a cache holds more rows than
  // a call reads).
  static Tensor leading_rows(const Tensor& t, int64_t rows) {
    Shape shape = t.shape();
    shape[0] = rows;
    auto owner = std::make_shared<Tensor>(t);
    return Tensor::from_external(owner->data(), shape, t.dtype(), t.device(), owner);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace nibble
