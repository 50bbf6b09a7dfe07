// The training ops of the reference backend. As in cpu_backend.cpp, inputs are widened to
// float, sums run in double and each output is rounded once; GEMMs are OpenBLAS sgemm.
#include "nibble/backend/cpu/cpu_backward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "nibble/backend/op_checks.h"

namespace nibble::cpu {

namespace {

// The start of token t's sequence: the first token of the run of equal ids that ends at t.
int64_t sequence_start(const int32_t* ids, int64_t t) {
  int64_t s = t;
  while (s > 0 && ids[s - 1] == ids[t]) --s;
  return s;
}

double dot(const float* a, const float* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

}  // namespace

float rmsnorm_rstd(const float* row, int64_t C, float eps) {
  const float variance = static_cast<float>(dot(row, row, C) / static_cast<double>(C));
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(variance + eps)));
}

// dx = rstd * g - rstd^3 * x * sum(g * x) / C with g = dy * w: the derivative of
// x * rsqrt(mean(x^2) + eps) applied to g, written with rstd so a saved one can be used.
void rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor* rstd,
                      float eps) {
  RowsDims d = check_rmsnorm_backward(Device::cpu, dx, dy, x, weight, rstd, eps);
  std::vector<float> xv = to_floats(x), g = to_floats(dy), w = to_floats(weight);
  for (int64_t t = 0; t < d.T; ++t) {
    float* xrow = &xv[t * d.C];
    float* grow = &g[t * d.C];
    const double r = rstd != nullptr ? rstd->data_as<float>()[t] : rmsnorm_rstd(xrow, d.C, eps);
    double sum_gx = 0;
    for (int64_t c = 0; c < d.C; ++c) sum_gx += static_cast<double>(grow[c]) * w[c] * xrow[c];
    const double mean_gx = sum_gx / static_cast<double>(d.C);
    for (int64_t c = 0; c < d.C; ++c)
      grow[c] = static_cast<float>(r * (static_cast<double>(grow[c]) * w[c]) - r * r * r * xrow[c] * mean_gx);
  }
  store_floats(dx, g);
}

void linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w) {
  LinearDims d = check_linear_backward(Device::cpu, dx, dy, w);
  std::vector<float> a = to_floats(dy), b = to_floats(w), c(d.T * d.K, 0.0f);
  if (d.T > 0 && d.N > 0 && d.K > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(d.T), static_cast<int>(d.K),
                static_cast<int>(d.N), 1.0f, a.data(), static_cast<int>(d.N), b.data(), static_cast<int>(d.K), 0.0f,
                c.data(), static_cast<int>(d.K));
  store_floats(dx, c);
}

void gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha, float beta) {
  GemmDims d = check_gemm(Device::cpu, out, a, trans_a, b, trans_b);
  std::vector<float> av = to_floats(a), bv = to_floats(b);
  std::vector<float> c = beta != 0.0f ? to_floats(out) : std::vector<float>(d.M * d.N, 0.0f);
  if (d.M > 0 && d.N > 0 && d.K > 0) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(d.M), static_cast<int>(d.N), static_cast<int>(d.K), alpha, av.data(),
                static_cast<int>(trans_a ? d.M : d.K), bv.data(), static_cast<int>(trans_b ? d.K : d.N), beta,
                c.data(), static_cast<int>(d.N));
  } else {
    for (float& value : c) value *= beta;
  }
  store_floats(out, c);
}

void attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& seq_ids) {
  AttentionDims d = check_attention_packed_forward(Device::cpu, out, lse, q, k, v, seq_ids);
  std::vector<float> qf = to_floats(q), kf = to_floats(k), vf = to_floats(v), of(d.T * d.H * d.D);
  const int32_t* ids = seq_ids.data_as<int32_t>();
  const int64_t group = d.H / d.KVH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.D));
  std::vector<double> score(d.T), acc(d.D);
  for (int64_t t = 0; t < d.T; ++t) {
    const int64_t begin = sequence_start(ids, t);
    for (int64_t h = 0; h < d.H; ++h) {
      const int64_t kvh = h / group;
      double max_score = -INFINITY, sum = 0;
      for (int64_t s = begin; s <= t; ++s) {
        score[s] = dot(&qf[(t * d.H + h) * d.D], &kf[(s * d.KVH + kvh) * d.D], d.D) * scale;
        max_score = std::max(max_score, score[s]);
      }
      for (int64_t s = begin; s <= t; ++s) sum += std::exp(score[s] - max_score);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = begin; s <= t; ++s) {
        const double p = std::exp(score[s] - max_score) / sum;
        const float* vrow = &vf[(s * d.KVH + kvh) * d.D];
        for (int64_t i = 0; i < d.D; ++i) acc[i] += p * vrow[i];
      }
      for (int64_t i = 0; i < d.D; ++i) of[(t * d.H + h) * d.D + i] = static_cast<float>(acc[i]);
      if (lse != nullptr) lse->data_as<float>()[h * d.T + t] = static_cast<float>(max_score + std::log(sum));
    }
  }
  store_floats(out, of);
}

void attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                               const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                               const Tensor& seq_ids) {
  AttentionDims d = check_attention_packed_backward(Device::cpu, dq, dk, dv, dout, q, k, v, out, lse, seq_ids);
  std::vector<float> qf = to_floats(q), kf = to_floats(k), vf = to_floats(v), of = to_floats(out);
  std::vector<float> dof = to_floats(dout);
  const float* lse_rows = lse.data_as<float>();
  const int32_t* ids = seq_ids.data_as<int32_t>();
  const int64_t group = d.H / d.KVH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.D));
  std::vector<double> dq_acc(qf.size(), 0.0), dk_acc(kf.size(), 0.0), dv_acc(vf.size(), 0.0);
  for (int64_t t = 0; t < d.T; ++t) {
    const int64_t begin = sequence_start(ids, t);
    for (int64_t h = 0; h < d.H; ++h) {
      const int64_t kvh = h / group;
      const float* qrow = &qf[(t * d.H + h) * d.D];
      const float* dorow = &dof[(t * d.H + h) * d.D];
      const double delta = dot(dorow, &of[(t * d.H + h) * d.D], d.D);
      for (int64_t s = begin; s <= t; ++s) {
        const float* krow = &kf[(s * d.KVH + kvh) * d.D];
        const float* vrow = &vf[(s * d.KVH + kvh) * d.D];
        const double p = std::exp(dot(qrow, krow, d.D) * scale - lse_rows[h * d.T + t]);
        const double ds = p * (dot(dorow, vrow, d.D) - delta) * scale;
        for (int64_t i = 0; i < d.D; ++i) {
          dq_acc[(t * d.H + h) * d.D + i] += ds * krow[i];
          dk_acc[(s * d.KVH + kvh) * d.D + i] += ds * qrow[i];
          dv_acc[(s * d.KVH + kvh) * d.D + i] += p * dorow[i];
        }
      }
    }
  }
  const std::pair<Tensor*, const std::vector<double>*> results[] = {{&dq, &dq_acc}, {&dk, &dk_acc}, {&dv, &dv_acc}};
  for (const auto& [tensor, acc] : results) store_floats(*tensor, std::vector<float>(acc->begin(), acc->end()));
}

void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) {
  const int64_t n = check_swiglu_backward(Device::cpu, dgate, dup, dout, gate, up);
  const DType dtype = gate.dtype();
  std::vector<float> g = to_floats(gate), u = to_floats(up), dy = to_floats(dout), dg(n), du(n);
  for (int64_t i = 0; i < n; ++i) {
    const double sigmoid = 1.0 / (1.0 + std::exp(-static_cast<double>(g[i])));
    const float silu = round_to(dtype, g[i] / (1.0f + std::exp(-g[i])));  // the forward's expression and rounding
    du[i] = static_cast<float>(static_cast<double>(dy[i]) * silu);
    dg[i] = static_cast<float>(static_cast<double>(dy[i]) * u[i] * sigmoid * (1.0 + g[i] * (1.0 - sigmoid)));
  }
  store_floats(dgate, dg);
  store_floats(dup, du);
}

void cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels, float grad_scale) {
  RowsDims d = check_cross_entropy(Device::cpu, losses, dlogits, logits, labels);
  const int64_t V = d.C;
  const int32_t* label = labels.data_as<int32_t>();
  for (int64_t t = 0; t < d.T; ++t)
    NIBBLE_CHECK(label[t] == -100 || (label[t] >= 0 && label[t] < V),
                 "cross_entropy: token {} has label {}, expected -100 (ignored) or a label in [0, {})", t, label[t],
                 V);
  // Read whole before anything is written: dlogits may be the logits tensor itself.
  std::vector<float> x = to_floats(logits);
  float* loss = losses.data_as<float>();
  for (int64_t t = 0; t < d.T; ++t) {
    float* row = &x[t * V];
    if (label[t] == -100) {
      loss[t] = 0.0f;
      std::fill(row, row + V, 0.0f);
      continue;
    }
    const double max_logit = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - max_logit);
    const double lse = max_logit + std::log(sum);
    loss[t] = static_cast<float>(lse - row[label[t]]);
    for (int64_t j = 0; j < V; ++j)
      row[j] = static_cast<float>((std::exp(row[j] - lse) - (j == label[t] ? 1.0 : 0.0)) * grad_scale);
  }
  if (dlogits != nullptr) store_floats(*dlogits, x);
}

}  // namespace nibble::cpu
