#include "backend_backward_cases.h"
#include "case_values.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "nibble/core/half.h"
#include "nibble/quant/quantize.h"

namespace nibble::test {

namespace {

// Row-major C[M, N] = A[M, K] B[K, N] in double.
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t M, int64_t K,
                           int64_t N) {
  std::vector<double> c(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) c[m * N + n] += a[m * K + k] * b[k * N + n];
  return c;
}

std::vector<double> transpose(const std::vector<double>& a, int64_t R, int64_t C) {
  std::vector<double> t(a.size());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) t[c * R + r] = a[r * C + c];
  return t;
}

std::vector<double> rounded(DType dtype, std::vector<double> v) {
  for (double& x : v) x = round_ref(dtype, x);
  return v;
}

// ---- the cases -------------------------------------------------------------------------------

OpCase rmsnorm_backward_case(DType dt, bool saved_rstd) {
  const int64_t T = 6, C = 200;
  const float eps = 1e-5f;
  OpCase c;
  c.name = "rmsnorm_backward_" + dtype_tag(dt) + (saved_rstd ? "_saved_rstd" : "");
  c.inputs = {normal({T, C}, dt, 2.0), normal({C}, dt, 0.2, 1.0), normal({T, C}, dt)};
  c.outputs = {{{T, C}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    Tensor rstd = Tensor::empty({T}, DType::f32, b.device());
    if (saved_rstd) {
      Tensor y = Tensor::empty({T, C}, dt, b.device());
      b.rmsnorm_forward(y, in[0], in[1], eps, &rstd);
    }
    b.rmsnorm_backward(out[0], in[2], in[0], in[1], saved_rstd ? &rstd : nullptr, eps);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), w = doubles(in[1]), dy = doubles(in[2]), dx(T * C);
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0, gx = 0;
      for (int64_t j = 0; j < C; ++j) {
        ss += x[t * C + j] * x[t * C + j];
        gx += dy[t * C + j] * w[j] * x[t * C + j];
      }
      const double r = 1.0 / std::sqrt(ss / C + eps);
      for (int64_t j = 0; j < C; ++j)
        dx[t * C + j] = round_ref(dt, r * dy[t * C + j] * w[j] - r * r * r * x[t * C + j] * gx / C);
    }
    return Values{dx};
  };
  c.bound = eps_of(dt) + 4 * C * kEpsF32;
  c.bound_origin = "one rounding (an ulp where it flips) plus fp32 errors of the C-term sums behind rstd and "
                   "sum(g*x), x4 for the products and rsqrt";
  return c;
}

OpCase rope_backward_case(DType dt) {
  const int64_t T = 9, H = 4, KVH = 2, D = 32, P = 40;
  RopeConfig config;
  config.theta = 10000.0;
  OpCase c;
  c.name = "rope_backward_" + dtype_tag(dt);
  c.inputs = {normal({T, H, D}, dt), normal({T, KVH, D}, dt)};
  c.outputs = {{{T, H, D}, dt}, {{T, KVH, D}, dt}};
  auto positions = [=](Device device) {
    Tensor pos = Tensor::empty({T}, DType::i32);
    for (int64_t t = 0; t < T; ++t) pos.data_as<int32_t>()[t] = static_cast<int32_t>((t * 7 + 3) % P);
    return pos.to(device);
  };
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    RopeTable table = rope_table_build(config, D, P, b.device());
    out[0].copy_from(in[0]);
    out[1].copy_from(in[1]);
    b.rope_backward(out[0], out[1], positions(b.device()), table);
  };
  c.reference = [=](const Tensors& in) {
    RopeTable table = rope_table_build(config, D, P, Device::cpu);
    std::vector<double> cos = doubles(table.cos), sin = doubles(table.sin), pos = doubles(positions(Device::cpu));
    Values result;
    for (int which = 0; which < 2; ++which) {
      std::vector<double> x = doubles(in[which]);
      const int64_t heads = which == 0 ? H : KVH, half = D / 2;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < half; ++j) {
            const int64_t p = static_cast<int64_t>(pos[t]);
            const double cj = round_ref(dt, cos[p * half + j]), sj = round_ref(dt, sin[p * half + j]);
            double& y1 = x[(t * heads + h) * D + j];
            double& y2 = x[(t * heads + h) * D + j + half];
            const double a = round_ref(dt, round_ref(dt, y1 * cj) + round_ref(dt, y2 * sj));
            const double b = round_ref(dt, round_ref(dt, y2 * cj) + round_ref(dt, -y1 * sj));
            y1 = a;
            y2 = b;
          }
      result.push_back(x);
    }
    return result;
  };
  c.bound = eps_of(dt) + 2 * kEpsF32;
  c.bound_origin = "the forward's rounding points (autograd's); an ulp where double-then-float rounding differs";
  return c;
}

// The double reference of packed attention: out (rounded), lse and, from the rounded out as
// the backends use it, dq, dk, dv (rounded).
Values packed_attention_reference(const Tensors& in, const std::vector<int64_t>& lengths, int64_t H, int64_t KVH,
                                  int64_t D, DType dt) {
  std::vector<double> q = doubles(in[0]), k = doubles(in[1]), v = doubles(in[2]), dout = doubles(in[3]);
  int64_t T = 0;
  for (int64_t n : lengths) T += n;
  std::vector<int64_t> begin(T);
  for (int64_t t = 0, start = 0, seq = 0; t < T; ++t) {
    if (t == start + lengths[seq]) start += lengths[seq++];
    begin[t] = start;
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> out(T * H * D), lse(H * T), dq(T * H * D, 0.0), dk(T * KVH * D, 0.0), dv(T * KVH * D, 0.0);
  std::vector<std::vector<double>> probs(T * H);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / (H / KVH);
      std::vector<double>& p = probs[t * H + h];
      double max_score = -INFINITY, sum = 0;
      for (int64_t s = begin[t]; s <= t; ++s) {
        double dot = 0;
        for (int64_t i = 0; i < D; ++i) dot += q[(t * H + h) * D + i] * k[(s * KVH + kvh) * D + i];
        p.push_back(dot * scale);
        max_score = std::max(max_score, p.back());
      }
      for (double& x : p) sum += (x = std::exp(x - max_score));
      for (double& x : p) x /= sum;
      lse[h * T + t] = max_score + std::log(sum);
      for (int64_t i = 0; i < D; ++i) {
        double acc = 0;
        for (int64_t s = begin[t]; s <= t; ++s) acc += p[s - begin[t]] * v[(s * KVH + kvh) * D + i];
        out[(t * H + h) * D + i] = round_ref(dt, acc);
      }
    }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / (H / KVH), row = (t * H + h) * D;
      double delta = 0;
      for (int64_t i = 0; i < D; ++i) delta += dout[row + i] * out[row + i];
      for (int64_t s = begin[t]; s <= t; ++s) {
        const double p = probs[t * H + h][s - begin[t]];
        double dp = 0;
        for (int64_t i = 0; i < D; ++i) dp += dout[row + i] * v[(s * KVH + kvh) * D + i];
        const double ds = p * (dp - delta) * scale;
        for (int64_t i = 0; i < D; ++i) {
          dq[row + i] += ds * k[(s * KVH + kvh) * D + i];
          dk[(s * KVH + kvh) * D + i] += ds * q[row + i];
          dv[(s * KVH + kvh) * D + i] += p * dout[row + i];
        }
      }
    }
  return Values{out, lse, rounded(dt, dq), rounded(dt, dk), rounded(dt, dv)};
}

OpCase attention_packed_case(DType dt, std::vector<int64_t> lengths, int64_t H, int64_t KVH, int64_t D) {
  int64_t T = 0;
  std::string shape;
  for (int64_t n : lengths) {
    T += n;
    shape += fmt::format("_{}", n);
  }
  OpCase c;
  c.name = fmt::format("attention_packed_{}_seqs{}_H{}_KVH{}_D{}", dtype_tag(dt), shape, H, KVH, D);
  c.inputs = {normal({T, H, D}, dt), normal({T, KVH, D}, dt), normal({T, KVH, D}, dt), normal({T, H, D}, dt)};
  c.outputs = {{{T, H, D}, dt}, {{H, T}, DType::f32}, {{T, H, D}, dt}, {{T, KVH, D}, dt}, {{T, KVH, D}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    Tensor ids = packed_ids(lengths, b.device());
    b.attention_packed_forward(out[0], &out[1], in[0], in[1], in[2], ids);
    b.attention_packed_backward(out[2], out[3], out[4], in[3], in[0], in[1], in[2], out[0], out[1], ids);
  };
  c.reference = [=](const Tensors& in) { return packed_attention_reference(in, lengths, H, KVH, D, dt); };
  c.bound = 2 * eps_of(dt) + 8 * (T + D) * kEpsF32;
  c.bound_origin = "one final rounding, and an ulp more where out's rounding flips and moves delta; fp32 "
                   "worst-case errors of the D-term dots and T-term sums, x8 for exp, scale and the products";
  return c;
}

OpCase swiglu_backward_case(DType dt) {
  const Shape shape{7, 130};
  OpCase c;
  c.name = "swiglu_backward_" + dtype_tag(dt);
  c.inputs = {normal(shape, dt), normal(shape, dt, 3.0), normal(shape, dt)};  // dout, gate, up
  c.outputs = {{shape, dt}, {shape, dt}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.swiglu_backward(out[0], out[1], in[0], in[1], in[2]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> dy = doubles(in[0]), g = doubles(in[1]), u = doubles(in[2]), dg(g.size()), du(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      const double sig = 1.0 / (1.0 + std::exp(-g[i]));
      du[i] = round_ref(dt, dy[i] * round_ref(dt, g[i] * sig));
      dg[i] = round_ref(dt, dy[i] * u[i] * sig * (1.0 + g[i] * (1.0 - sig)));
    }
    return Values{dg, du};
  };
  c.bound = 2 * eps_of(dt) + 8 * kEpsF32;
  c.bound_origin = "one rounding each, an ulp more where fp32 silu flips the rounded activation; ~8 fp32 ops";
  return c;
}

OpCase linear_backward_case(DType dt, bool four_bit) {
  const int64_t T = 11, K = 128, N = 72;
  QuantConfig config;
  OpCase c;
  c.name = std::string(four_bit ? "linear_4bit_backward_" : "linear_backward_") + dtype_tag(dt);
  c.inputs = {normal({T, N}, dt), normal({N, K}, dt, 0.1)};
  c.outputs = {{{T, K}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    if (!four_bit) return b.linear_backward(out[0], in[0], in[1]);
    QuantizedWeight w = quantize_4bit(in[1].to(Device::cpu), config);
    for (Tensor* t : {&w.packed, &w.code, &w.absmax, &w.nested_absmax, &w.nested_code})
      if (t->defined()) *t = t->to(b.device());
    Tensor workspace = Tensor::empty({N * K}, dt, b.device());
    b.linear_4bit_backward(out[0], in[0], w, workspace);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> w = four_bit ? doubles(dequantize_4bit(quantize_4bit(in[1], config), dt)) : doubles(in[1]);
    return Values{rounded(dt, matmul(doubles(in[0]), w, T, N, K))};
  };
  c.bound = eps_of(dt) + N * kEpsF32;
  c.bound_origin = "one rounding of an fp32 N-term dot (N*eps_f32 worst case) plus an ulp where it flips; the "
                   "4-bit weight dequantizes exactly";
  return c;
}

// out = alpha * op(a) @ op(b) + beta * out, out's start value an input.
OpCase gemm_case(DType a_dt, DType b_dt, DType out_dt, bool trans_a, bool trans_b, float beta) {
  const int64_t M = 13, K = 24, N = 9;
  const float alpha = 0.75f;
  OpCase c;
  c.name = fmt::format("gemm_{}{}_{}{}_to_{}_beta{}", dtype_tag(a_dt), trans_a ? "T" : "", dtype_tag(b_dt), trans_b ? "T" : "",
                       dtype_tag(out_dt), beta != 0.0f ? 1 : 0);
  c.inputs = {normal(trans_a ? Shape{K, M} : Shape{M, K}, a_dt), normal(trans_b ? Shape{N, K} : Shape{K, N}, b_dt),
              normal({M, N}, out_dt)};
  c.outputs = {{{M, N}, out_dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    if (beta != 0.0f) out[0].copy_from(in[2]);
    b.gemm(out[0], in[0], trans_a, in[1], trans_b, alpha, beta);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> a = doubles(in[0]), bm = doubles(in[1]), o = doubles(in[2]);
    if (trans_a) a = transpose(a, K, M);
    if (trans_b) bm = transpose(bm, N, K);
    std::vector<double> y = matmul(a, bm, M, K, N);
    for (int64_t i = 0; i < M * N; ++i) y[i] = round_ref(out_dt, alpha * y[i] + beta * o[i]);
    return Values{y};
  };
  c.bound = eps_of(out_dt) + (K + 2) * kEpsF32;
  c.bound_origin = "one rounding of an fp32 K-term dot, alpha and beta (K+2 fp32 roundings), an ulp where it flips";
  return c;
}

// Labels fixed per token: every fourth ignored (-100), the rest spread over [0, V).
Tensor ce_labels(int64_t T, int64_t V, Device device) {
  Tensor labels = Tensor::empty({T}, DType::i32);
  for (int64_t t = 0; t < T; ++t) labels.data_as<int32_t>()[t] = t % 4 == 3 ? -100 : static_cast<int32_t>((t * 37) % V);
  return labels.to(device);
}

OpCase cross_entropy_case(DType logits_dt, DType grad_dt, bool in_place) {
  const int64_t T = 10, V = 300;
  const int64_t counted = T - T / 4;
  const float grad_scale = 1.0f / static_cast<float>(counted);
  OpCase c;
  c.name = "cross_entropy_" + dtype_tag(logits_dt) + "_grad_" + dtype_tag(grad_dt) + (in_place ? "_in_place" : "");
  c.inputs = {normal({T, V}, logits_dt, 3.0)};
  c.outputs = {{{T}, DType::f32}, {{T, V}, grad_dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    Tensor labels = ce_labels(T, V, b.device());
    if (!in_place) return b.cross_entropy(out[0], &out[1], in[0], labels, grad_scale);
    out[1].copy_from(in[0]);  // the logits, overwritten by their gradient
    b.cross_entropy(out[0], &out[1], out[1], labels, grad_scale);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), labels = doubles(ce_labels(T, V, Device::cpu)), loss(T), grad(T * V);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t label = static_cast<int64_t>(labels[t]);
      if (label == -100) {
        loss[t] = 0;
        for (int64_t j = 0; j < V; ++j) grad[t * V + j] = 0;
        continue;
      }
      double max_x = -INFINITY, sum = 0;
      for (int64_t j = 0; j < V; ++j) max_x = std::max(max_x, x[t * V + j]);
      for (int64_t j = 0; j < V; ++j) sum += std::exp(x[t * V + j] - max_x);
      const double lse = max_x + std::log(sum);
      loss[t] = round_ref(DType::f32, lse - x[t * V + label]);
      for (int64_t j = 0; j < V; ++j)
        grad[t * V + j] = round_ref(grad_dt, (std::exp(x[t * V + j] - lse) - (j == label)) * grad_scale);
    }
    return Values{loss, grad};
  };
  c.bound = eps_of(grad_dt) + 4 * V * kEpsF32;
  c.bound_origin = "fp32 V-term exp sum (V*eps_f32 worst case, x4 for exp, log and the subtraction) plus one "
                   "rounding of the gradient to its dtype";
  return c;
}

std::vector<OpCase> build_cases() {
  std::vector<OpCase> cases;
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    cases.push_back(rmsnorm_backward_case(dt, true));
    cases.push_back(rmsnorm_backward_case(dt, false));
    cases.push_back(rope_backward_case(dt));
    cases.push_back(attention_packed_case(dt, {5, 1, 9, 3}, 4, 2, 64));  // GQA
    cases.push_back(attention_packed_case(dt, {40, 150}, 2, 1, 40));      // MQA, odd D, runs over a tile
    cases.push_back(attention_packed_case(dt, {12}, 3, 3, 128));          // one sequence, MHA
    cases.push_back(swiglu_backward_case(dt));
    cases.push_back(linear_backward_case(dt, false));
    cases.push_back(linear_backward_case(dt, true));
    cases.push_back(cross_entropy_case(dt, dt, false));
  }
  cases.push_back(cross_entropy_case(DType::f32, DType::f32, true));
  cases.push_back(cross_entropy_case(DType::bf16, DType::f32, false));
  // LoRA's mixes: 16-bit activations with fp32 adapters, and the transposes of its gradients.
  cases.push_back(gemm_case(DType::bf16, DType::f32, DType::f32, false, true, 0.0f));
  cases.push_back(gemm_case(DType::f32, DType::f32, DType::bf16, false, true, 1.0f));
  cases.push_back(gemm_case(DType::bf16, DType::bf16, DType::bf16, true, false, 0.0f));
  cases.push_back(gemm_case(DType::f16, DType::bf16, DType::f16, true, true, 1.0f));
  cases.push_back(gemm_case(DType::bf16, DType::bf16, DType::f32, false, false, 1.0f));
  cases.push_back(gemm_case(DType::f32, DType::f32, DType::f32, true, true, 0.5f));
  return cases;
}

}  // namespace

const std::vector<OpCase>& backend_backward_cases() {
  static const std::vector<OpCase> cases = build_cases();
  return cases;
}

Tensor packed_ids(const std::vector<int64_t>& lengths, Device device) {
  std::vector<int32_t> ids;
  for (size_t seq = 0; seq < lengths.size(); ++seq) ids.insert(ids.end(), lengths[seq], static_cast<int32_t>(seq));
  Tensor t = Tensor::empty({static_cast<int64_t>(ids.size())}, DType::i32);
  for (size_t i = 0; i < ids.size(); ++i) t.data_as<int32_t>()[i] = ids[i];
  return t.to(device);
}

void check_packed_equals_separate(Backend& b, DType dt, double bound) {
  const std::vector<int64_t> lengths = {7, 1, 20, 4};
  const int64_t T = 32, H = 4, KVH = 2, D = 32;
  OpCase whole = attention_packed_case(dt, lengths, H, KVH, D);
  std::mt19937_64 rng(1234);
  Tensors inputs = make_inputs(whole, rng);
  Values packed = run_on_backend(whole, b, inputs);
  // Rows [start, start + n) of each packed input, run as a one-sequence batch.
  int64_t start = 0;
  for (int64_t n : lengths) {
    OpCase single = attention_packed_case(dt, {n}, H, KVH, D);
    Tensors slice;
    for (const Tensor& t : inputs) {
      const int64_t row = t.numel() / T;
      Tensor part = Tensor::empty({n, t.dim(1), t.dim(2)}, dt);
      std::memcpy(part.data(), static_cast<const char*>(t.data()) + start * row * dtype_size(dt), part.nbytes());
      slice.push_back(part);
    }
    Values alone = run_on_backend(single, b, slice);
    for (size_t o = 0; o < alone.size(); ++o) {
      // lse is [H, T]: the sequence's columns; the others are token rows.
      std::vector<double> expected;
      const int64_t row = static_cast<int64_t>(packed[o].size()) / T;
      if (o == 1) {
        for (int64_t h = 0; h < H; ++h)
          for (int64_t t = 0; t < n; ++t) expected.push_back(packed[o][h * T + start + t]);
      } else {
        expected.assign(packed[o].begin() + start * row, packed[o].begin() + (start + n) * row);
      }
      double norm = 0, largest = 0;
      for (size_t i = 0; i < expected.size(); ++i) {
        norm += expected[i] * expected[i];
        largest = std::max(largest, std::abs(alone[o][i]));
      }
      if (norm == 0)  // dq and dk of a one-token sequence: p = 1, so ds = dp - delta = 0 exactly in math
        EXPECT_LE(largest, 1e-6) << "output " << o << ", sequence at " << start;
      else
        EXPECT_LE(relative_error(alone[o], expected), bound) << "output " << o << ", sequence at " << start;
    }
    // The inference path (one causal sequence, no cache) gives the same output, within the
    // attention cases' bound (its scores are rounded to fp32 before scaling).
    Tensor out = Tensor::empty({n, H, D}, dt, b.device());
    b.attention_forward(out, slice[0].to(b.device()), slice[1].to(b.device()), slice[2].to(b.device()));
    b.synchronize();
    std::vector<double> expected(packed[0].begin() + start * H * D, packed[0].begin() + (start + n) * H * D);
    const double inference_bound = bound + eps_of(dt) + 4 * (n + D) * kEpsF32;
    EXPECT_LE(relative_error(doubles(out), expected), inference_bound) << "attention_forward, sequence at " << start;
    start += n;
  }
}

namespace {

template <typename F>
void expect_error_naming(const char* what, F&& call) {
  try {
    call();
    ADD_FAILURE() << "expected nibble::Error mentioning '" << what << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

Tensor filled(Backend& b, DType dt, const Shape& shape) {
  Tensor t = Tensor::empty(shape, dt);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dt == DType::f32) t.data_as<float>()[i] = 0.5f;
    if (dt == DType::bf16) t.data_as<bf16_t>()[i] = float_to_bf16(0.5f);
    if (dt == DType::i32) t.data_as<int32_t>()[i] = 0;
  }
  return t.to(b.device());
}

}  // namespace

void check_backward_rejects_bad_arguments(Backend& b) {
  const DType bf = DType::bf16;
  Tensor x = filled(b, bf, {3, 8}), w = filled(b, bf, {8}), dx = filled(b, bf, {3, 8}), rstd_bad = filled(b, bf, {3});
  expect_error_naming("rmsnorm_backward: rstd", [&] { b.rmsnorm_backward(dx, x, x, w, &rstd_bad, 1e-5f); });
  Tensor dy = filled(b, bf, {3, 5}), lw = filled(b, bf, {4, 8});
  expect_error_naming("linear_backward", [&] { b.linear_backward(dx, dy, lw); });
  Tensor a = filled(b, bf, {3, 4}), bm = filled(b, DType::f32, {5, 2}), out = filled(b, bf, {3, 2});
  expect_error_naming("gemm", [&] { b.gemm(out, a, false, bm, false, 1.0f, 0.0f); });
  Tensor q = filled(b, bf, {4, 2, 8}), kv = filled(b, bf, {4, 1, 8}), kv_long = filled(b, bf, {6, 1, 8});
  Tensor ids = filled(b, DType::i32, {4}), lse_bad = filled(b, DType::f32, {4, 2}), o = filled(b, bf, {4, 2, 8});
  expect_error_naming("S == T", [&] { b.attention_packed_forward(o, nullptr, q, kv_long, kv_long, ids); });
  expect_error_naming("lse", [&] { b.attention_packed_forward(o, &lse_bad, q, kv, kv, ids); });
  Tensor logits = filled(b, DType::f32, {3, 10}), losses = filled(b, DType::f32, {3});
  Tensor labels = Tensor::empty({3}, DType::i32);
  labels.data_as<int32_t>()[0] = 1;
  labels.data_as<int32_t>()[1] = 10;
  labels.data_as<int32_t>()[2] = -100;
  Tensor labels_dev = labels.to(b.device());
  // A GPU reports a bad label at the next synchronize() (backend.h).
  expect_error_naming("has label 10", [&] {
    b.cross_entropy(losses, nullptr, logits, labels_dev, 1.0f);
    b.synchronize();
  });
  Tensor g = filled(b, bf, {2, 3}), g_bad = filled(b, bf, {3, 2});
  expect_error_naming("swiglu_backward", [&] { b.swiglu_backward(g, g, g, g, g_bad); });
}

}  // namespace nibble::test
