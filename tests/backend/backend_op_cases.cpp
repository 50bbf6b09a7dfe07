#include "backend_op_cases.h"
#include "case_values.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "nibble/core/half.h"
#include "nibble/core/rng.h"
#include "nibble/quant/quantize.h"

namespace nibble::test {

namespace {

// ---- the cases -----------------------------------------------------------------------------

OpCase embedding_case(DType dt) {
  const int64_t V = 50, C = 48, T = 13;
  OpCase c;
  c.name = "embedding_" + dtype_tag(dt);
  c.inputs = {index({T}, V), normal({V, C}, dt)};
  c.outputs = {{{T, C}, dt}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.embedding_forward(out[0], in[0], in[1]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> ids = doubles(in[0]), table = doubles(in[1]), out(T * C);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < C; ++j) out[t * C + j] = table[static_cast<int64_t>(ids[t]) * C + j];
    return Values{out};
  };
  c.bound = 0.0;
  c.bound_origin = "exact: a row copy";
  return c;
}

OpCase add_case(DType dt) {
  const Shape shape{9, 70};
  OpCase c;
  c.name = "add_" + dtype_tag(dt);
  c.inputs = {normal(shape, dt), normal(shape, dt, 0.5)};
  c.outputs = {{shape, dt}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.add_forward(out[0], in[0], in[1]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> a = doubles(in[0]), x = doubles(in[1]);
    for (size_t i = 0; i < a.size(); ++i) a[i] = round_ref(dt, a[i] + x[i]);
    return Values{a};
  };
  c.bound = eps_of(dt);
  c.bound_origin = "one rounding in both; at most one ulp where double-then-float rounding differs";
  return c;
}

OpCase cast_case(DType from, DType to) {
  const Shape shape{5, 67};
  OpCase c;
  c.name = "cast_" + dtype_tag(from) + "_to_" + dtype_tag(to);
  c.inputs = {normal(shape, from, 3.0)};
  c.outputs = {{shape, to}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.cast(out[0], in[0]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]);
    for (double& v : x) v = round_ref(to, v);
    return Values{x};
  };
  c.bound = 0.0;
  c.bound_origin = "exact: round to nearest even of a value every dtype here holds exactly in float";
  return c;
}

// C a multiple of 16 bytes (the CUDA kernel's vector loads, several per thread at 2056) and not (70).
OpCase rmsnorm_case(DType dt, int64_t C) {
  const int64_t T = 7;
  const float eps = 1e-5f;
  OpCase c;
  c.name = "rmsnorm_" + dtype_tag(dt) + "_C" + std::to_string(C);
  c.inputs = {normal({T, C}, dt, 2.0), normal({C}, dt, 0.2, 1.0)};
  c.outputs = {{{T, C}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) { b.rmsnorm_forward(out[0], in[0], in[1], eps); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), w = doubles(in[1]);
    for (int64_t t = 0; t < T; ++t) {
      double sum = 0;
      for (int64_t j = 0; j < C; ++j) sum += x[t * C + j] * x[t * C + j];
      double rstd = 1.0 / std::sqrt(sum / C + static_cast<double>(eps));
      for (int64_t j = 0; j < C; ++j) x[t * C + j] = round_ref(dt, round_ref(dt, x[t * C + j] * rstd) * w[j]);
    }
    return Values{x};
  };
  c.bound = eps_of(dt) + C * kEpsF32;
  c.bound_origin = "same rounding points: one ulp of the dtype where fp32 intermediates flip a rounding, "
                   "plus C*eps_f32 for an fp32 sum of C squares";
  return c;
}

// The fused residual add + norm: both outputs (the updated residual stream and the normed rows).
OpCase add_rmsnorm_case(DType dt, int64_t C) {
  const int64_t T = 5;
  const float eps = 1e-5f;
  OpCase c;
  c.name = "add_rmsnorm_" + dtype_tag(dt) + "_C" + std::to_string(C);
  c.inputs = {normal({T, C}, dt, 2.0), normal({T, C}, dt, 0.5), normal({C}, dt, 0.2, 1.0)};
  c.outputs = {{{T, C}, dt}, {{T, C}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    out[0].copy_from(in[0]);
    b.add_rmsnorm_forward(out[0], out[1], in[1], in[2], eps);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), d = doubles(in[1]), w = doubles(in[2]), y(T * C);
    for (int64_t t = 0; t < T; ++t) {
      double sum = 0;
      for (int64_t j = 0; j < C; ++j) {
        double& v = x[t * C + j];
        v = round_ref(dt, v + d[t * C + j]);
        sum += v * v;
      }
      const double rstd = 1.0 / std::sqrt(sum / C + static_cast<double>(eps));
      for (int64_t j = 0; j < C; ++j) y[t * C + j] = round_ref(dt, round_ref(dt, x[t * C + j] * rstd) * w[j]);
    }
    return Values{x, y};
  };
  c.bound = eps_of(dt) + C * kEpsF32;
  c.bound_origin = "as add, then as rmsnorm on the rounded sum";
  return c;
}

OpCase linear_case(DType dt, bool with_bias) {
  const int64_t T = 19, K = 96, N = 40;
  OpCase c;
  c.name = "linear_" + dtype_tag(dt) + (with_bias ? "_bias" : "");
  c.inputs = {normal({T, K}, dt), normal({N, K}, dt, 0.1)};
  if (with_bias) c.inputs.push_back(normal({N}, dt, 0.5));
  c.outputs = {{{T, N}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    b.linear_forward(out[0], in[0], in[1], with_bias ? &in[2] : nullptr);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), w = doubles(in[1]), y(T * N);
    std::vector<double> bias = with_bias ? doubles(in[2]) : std::vector<double>(N, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double acc = bias[n];
        for (int64_t k = 0; k < K; ++k) acc += x[t * K + k] * w[n * K + k];
        y[t * N + n] = round_ref(dt, acc);
      }
    return Values{y};
  };
  c.bound = eps_of(dt) + K * kEpsF32;
  c.bound_origin = "one rounding of an fp32 dot product: K*eps_f32 worst-case summation error, plus one ulp "
                   "of the dtype where it flips the final rounding";
  return c;
}

QuantizedWeight quantized_to(const QuantizedWeight& w, Device device) {
  QuantizedWeight out = w;
  for (Tensor* t : {&out.packed, &out.code, &out.absmax, &out.nested_absmax, &out.nested_code})
    if (t->defined()) *t = t->to(device);
  return out;
}

// The weight is quantized on the host by quant/ (whose bytes quant's own tests check against
// bitsandbytes); this case checks the dequantize-into-workspace plus GEMM path around it.
OpCase linear_4bit_case(DType dt, bool double_quant, bool with_bias) {
  const int64_t T = 13, K = 128, N = 48;
  QuantConfig config;
  config.double_quant = double_quant;
  OpCase c;
  c.name = "linear_4bit_" + dtype_tag(dt) + (double_quant ? "_dq" : "") + (with_bias ? "_bias" : "");
  c.inputs = {normal({T, K}, dt), normal({N, K}, dt, 0.05)};
  if (with_bias) c.inputs.push_back(normal({N}, dt, 0.5));
  c.outputs = {{{T, N}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    QuantizedWeight w = quantized_to(quantize_4bit(in[1].to(Device::cpu), config), b.device());
    Tensor workspace = Tensor::empty({N, K}, dt, b.device());
    b.linear_4bit_forward(out[0], in[0], w, with_bias ? &in[2] : nullptr, workspace);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), w = doubles(dequantize_4bit(quantize_4bit(in[1], config), dt)), y(T * N);
    std::vector<double> bias = with_bias ? doubles(in[2]) : std::vector<double>(N, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double acc = bias[n];
        for (int64_t k = 0; k < K; ++k) acc += x[t * K + k] * w[n * K + k];
        y[t * N + n] = round_ref(dt, acc);
      }
    return Values{y};
  };
  c.bound = eps_of(dt) + K * kEpsF32;
  c.bound_origin = "as linear: the dequantized weight is exact (bitsandbytes' values), then one rounded fp32 dot";
  return c;
}

// Few tokens (T <= 8): the CUDA backend takes the fused GEMV instead of dequantize + GEMM. The
// shapes cover its two kernels: K a multiple of 32 but not of 256 and N not a multiple of 16 (the
// tensor-core kernel, with a partial last step and tile for BF16/F16), K a multiple of 64 (its
// one-scale-per-lane path), odd K (the per-element kernel: rows start mid-byte and mid-block) and
// every F32 call; quantization blocks straddle rows.
struct GemvShape {
  QuantType type;
  bool double_quant;
  bool with_bias;
  int64_t blocksize, K, N;
};

OpCase linear_4bit_gemv_case(DType dt, int64_t T, const GemvShape& s) {
  QuantConfig config;
  config.type = s.type;
  config.blocksize = s.blocksize;
  config.double_quant = s.double_quant;
  const int64_t K = s.K, N = s.N;
  const bool with_bias = s.with_bias;
  OpCase c;
  c.name = fmt::format("linear_4bit_gemv_{}_{}{}_B{}_T{}_K{}_N{}{}", dtype_tag(dt), quant_type_name(s.type),
                       s.double_quant ? "_dq" : "", s.blocksize, T, K, N, with_bias ? "_bias" : "");
  c.inputs = {normal({T, K}, dt), normal({N, K}, dt, 0.05)};
  if (with_bias) c.inputs.push_back(normal({N}, dt, 0.5));
  c.outputs = {{{T, N}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    QuantizedWeight w = quantized_to(quantize_4bit(in[1].to(Device::cpu), config), b.device());
    Tensor workspace = Tensor::empty({N, K}, dt, b.device());
    b.linear_4bit_forward(out[0], in[0], w, with_bias ? &in[2] : nullptr, workspace);
  };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]), w = doubles(dequantize_4bit(quantize_4bit(in[1], config), dt)), y(T * N);
    std::vector<double> bias = with_bias ? doubles(in[2]) : std::vector<double>(N, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double acc = bias[n];
        for (int64_t k = 0; k < K; ++k) acc += x[t * K + k] * w[n * K + k];
        y[t * N + n] = round_ref(dt, acc);
      }
    return Values{y};
  };
  c.bound = eps_of(dt) + K * kEpsF32;
  c.bound_origin = "as linear_4bit: exact dequantized weights, then one rounded fp32 dot in another order";
  return c;
}

// The reference reads the fp32 table (checked on its own in test_rope_table) and applies
// transformers' order of roundings in double.
OpCase rope_case(DType dt, const RopeConfig& config, int64_t D, const std::string& label) {
  const int64_t T = 11, H = 4, KVH = 2, P = 64;
  OpCase c;
  c.name = "rope_" + label + "_" + dtype_tag(dt);
  c.inputs = {normal({T, H, D}, dt), normal({T, KVH, D}, dt), index({T}, P)};
  c.outputs = {{{T, H, D}, dt}, {{T, KVH, D}, dt}};
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    RopeTable table = rope_table_build(config, D, P, b.device());
    out[0].copy_from(in[0]);
    out[1].copy_from(in[1]);
    b.rope_forward(out[0], out[1], in[2], table);
  };
  c.reference = [=](const Tensors& in) {
    RopeTable table = rope_table_build(config, D, P, Device::cpu);
    std::vector<double> cos = doubles(table.cos), sin = doubles(table.sin), pos = doubles(in[2]);
    Values result;
    for (int which = 0; which < 2; ++which) {
      std::vector<double> x = doubles(in[which]);
      const int64_t heads = which == 0 ? H : KVH, half = D / 2;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < half; ++j) {
            const int64_t p = static_cast<int64_t>(pos[t]);
            double cj = round_ref(dt, cos[p * half + j]), sj = round_ref(dt, sin[p * half + j]);
            double& x1 = x[(t * heads + h) * D + j];
            double& x2 = x[(t * heads + h) * D + j + half];
            double a = round_ref(dt, round_ref(dt, x1 * cj) + round_ref(dt, -x2 * sj));
            double b = round_ref(dt, round_ref(dt, x2 * cj) + round_ref(dt, x1 * sj));
            x1 = a;
            x2 = b;
          }
      result.push_back(x);
    }
    return result;
  };
  c.bound = eps_of(dt) + 2 * kEpsF32;
  c.bound_origin = "same rounding points; one ulp where double-then-float rounding differs, 2 fp32 roundings";
  return c;
}

OpCase attention_case(DType dt, int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D) {
  OpCase c;
  c.name = fmt::format("attention_{}_T{}_S{}_H{}_KVH{}_D{}", dtype_tag(dt), T, S, H, KVH, D);
  c.inputs = {normal({T, H, D}, dt), normal({S, KVH, D}, dt), normal({S, KVH, D}, dt)};
  c.outputs = {{{T, H, D}, dt}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.attention_forward(out[0], in[0], in[1], in[2]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> q = doubles(in[0]), k = doubles(in[1]), v = doubles(in[2]), out(T * H * D);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kvh = h / (H / KVH), visible = S - T + t + 1;
        std::vector<double> score(visible);
        double max_score = -INFINITY, sum = 0;
        for (int64_t s = 0; s < visible; ++s) {
          double dot = 0;
          for (int64_t i = 0; i < D; ++i) dot += q[(t * H + h) * D + i] * k[(s * KVH + kvh) * D + i];
          score[s] = dot * scale;
          max_score = std::max(max_score, score[s]);
        }
        for (double& s : score) sum += (s = std::exp(s - max_score));
        for (int64_t i = 0; i < D; ++i) {
          double acc = 0;
          for (int64_t s = 0; s < visible; ++s) acc += score[s] / sum * v[(s * KVH + kvh) * D + i];
          out[(t * H + h) * D + i] = round_ref(dt, acc);
        }
      }
    return Values{out};
  };
  c.bound = eps_of(dt) + 4 * (S + D) * kEpsF32;
  c.bound_origin = "one final rounding (one ulp where it flips) plus fp32 worst-case errors of the D-term "
                   "scores and S-term softmax and value sums, x4 for exp, scale and the divide";
  return c;
}

// Attention over a whole cache with each query's position given: random positions (repeats and
// any order are allowed), so queries see anything from one key to all P.
OpCase attention_cached_case(DType dt, int64_t T, int64_t P, int64_t H, int64_t KVH, int64_t D) {
  OpCase c;
  c.name = fmt::format("attention_cached_{}_T{}_P{}_H{}_KVH{}_D{}", dtype_tag(dt), T, P, H, KVH, D);
  c.inputs = {normal({T, H, D}, dt), normal({P, KVH, D}, dt), normal({P, KVH, D}, dt), index({T}, P)};
  c.outputs = {{{T, H, D}, dt}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.attention_cached_forward(out[0], in[0], in[1], in[2], in[3]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> q = doubles(in[0]), k = doubles(in[1]), v = doubles(in[2]), pos = doubles(in[3]);
    std::vector<double> out(T * H * D);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kvh = h / (H / KVH), visible = static_cast<int64_t>(pos[t]) + 1;
        std::vector<double> score(visible);
        double max_score = -INFINITY, sum = 0;
        for (int64_t s = 0; s < visible; ++s) {
          double dot = 0;
          for (int64_t i = 0; i < D; ++i) dot += q[(t * H + h) * D + i] * k[(s * KVH + kvh) * D + i];
          score[s] = dot * scale;
          max_score = std::max(max_score, score[s]);
        }
        for (double& s : score) sum += (s = std::exp(s - max_score));
        for (int64_t i = 0; i < D; ++i) {
          double acc = 0;
          for (int64_t s = 0; s < visible; ++s) acc += score[s] / sum * v[(s * KVH + kvh) * D + i];
          out[(t * H + h) * D + i] = round_ref(dt, acc);
        }
      }
    return Values{out};
  };
  c.bound = eps_of(dt) + 4 * (P + D) * kEpsF32;
  c.bound_origin = "as attention: one final rounding plus fp32 worst-case errors of the D-term scores and the "
                   "(at most P)-term softmax and value sums, x4";
  return c;
}

// T new rows written into a P-row cache at distinct, scattered positions (t * 7 + 3) % P; every
// other row keeps the cache's old value.
OpCase kv_cache_write_case(DType dt, int64_t T, int64_t P, int64_t KVH, int64_t D) {
  OpCase c;
  c.name = fmt::format("kv_cache_write_{}_T{}_P{}_KVH{}_D{}", dtype_tag(dt), T, P, KVH, D);
  c.inputs = {normal({P, KVH, D}, dt), normal({P, KVH, D}, dt), normal({T, KVH, D}, dt), normal({T, KVH, D}, dt)};
  c.outputs = {{{P, KVH, D}, dt}, {{P, KVH, D}, dt}};
  auto position = [=](int64_t t) { return static_cast<int32_t>((t * 7 + 3) % P); };
  c.run = [=](Backend& b, Tensors& in, Tensors& out) {
    std::vector<int32_t> host(T);
    for (int64_t t = 0; t < T; ++t) host[t] = position(t);
    Tensor positions =
        Tensor::from_external(host.data(), {T}, DType::i32, Device::cpu, nullptr).to(b.device());
    out[0].copy_from(in[0]);
    out[1].copy_from(in[1]);
    b.kv_cache_write(out[0], out[1], in[2], in[3], positions);
  };
  c.reference = [=](const Tensors& in) {
    Values caches = {doubles(in[0]), doubles(in[1])};
    const std::vector<double> rows[2] = {doubles(in[2]), doubles(in[3])};
    for (int which = 0; which < 2; ++which)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < KVH * D; ++i) caches[which][position(t) * KVH * D + i] = rows[which][t * KVH * D + i];
    return caches;
  };
  c.bound = 0.0;
  c.bound_origin = "exact: row copies";
  return c;
}

OpCase swiglu_case(DType dt) {
  const Shape shape{8, 120};
  OpCase c;
  c.name = "swiglu_" + dtype_tag(dt);
  c.inputs = {normal(shape, dt, 3.0), normal(shape, dt)};
  c.outputs = {{shape, dt}};
  c.run = [](Backend& b, Tensors& in, Tensors& out) { b.swiglu_forward(out[0], in[0], in[1]); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> g = doubles(in[0]), u = doubles(in[1]);
    for (size_t i = 0; i < g.size(); ++i) g[i] = round_ref(dt, round_ref(dt, g[i] / (1 + std::exp(-g[i]))) * u[i]);
    return Values{g};
  };
  c.bound = eps_of(dt) + 4 * kEpsF32;
  c.bound_origin = "same rounding points; one ulp where fp32 silu (exp, add, divide: 4 fp32 roundings) flips one";
  return c;
}

// The mask is drawn from Philox in the reference too, so a backend that drew another mask, or
// scaled by anything but 1/(1-p), would be off by whole elements, far past the bound.
OpCase dropout_case(DType in_dt, DType out_dt, float p) {
  const Shape shape{8, 130};
  OpCase c;
  c.name = "dropout_" + dtype_tag(in_dt) + "_to_" + dtype_tag(out_dt);
  c.inputs = {normal(shape, in_dt)};
  c.outputs = {{shape, out_dt}};
  constexpr uint64_t kSeed = 1234, kStream = 77;
  c.run = [=](Backend& b, Tensors& in, Tensors& out) { b.dropout(out[0], in[0], p, kSeed, kStream); };
  c.reference = [=](const Tensors& in) {
    std::vector<double> x = doubles(in[0]);
    const double scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = philox_uniform_at(kSeed, kStream, i) >= p ? round_ref(out_dt, x[i] * scale) : 0.0;
    return Values{x};
  };
  c.bound = eps_of(out_dt) + kEpsF32;
  c.bound_origin = "one rounding of x * scale to the output dtype, after an fp32 product";
  return c;
}

std::vector<OpCase> build_cases() {
  const DType dtypes[] = {DType::f32, DType::bf16, DType::f16};
  RopeConfig plain;  // head_dim 32
  plain.theta = 10000.0;
  RopeConfig llama3;  // head_dim 64
  llama3.theta = 500000.0;
  llama3.type = RopeType::llama3;
  llama3.factor = 8.0;
  llama3.low_freq_factor = 1.0;
  llama3.high_freq_factor = 4.0;
  llama3.original_max_position_embeddings = 8192;
  std::vector<OpCase> cases;
  for (DType dt : dtypes) {
    cases.push_back(embedding_case(dt));
    cases.push_back(add_case(dt));
    for (int64_t C : {256, 70, 2056}) cases.push_back(rmsnorm_case(dt, C));
    for (int64_t C : {256, 70}) cases.push_back(add_rmsnorm_case(dt, C));
    cases.push_back(linear_case(dt, false));
    cases.push_back(linear_case(dt, true));
    cases.push_back(linear_4bit_case(dt, true, false));
    cases.push_back(linear_4bit_case(dt, false, true));
    cases.push_back(rope_case(dt, plain, 32, "default"));
    cases.push_back(rope_case(dt, llama3, 64, "llama3"));
    cases.push_back(attention_case(dt, 9, 9, 4, 2, 64));      // prefill, GQA
    cases.push_back(attention_case(dt, 5, 23, 6, 1, 40));     // KV cache, MQA, odd D
    cases.push_back(attention_case(dt, 1, 300, 2, 2, 128));   // one decode step, many keys
    cases.push_back(attention_case(dt, 70, 70, 2, 1, 16));    // more queries than a tile
    cases.push_back(attention_cached_case(dt, 1, 300, 4, 2, 128));  // a decode step, GQA
    cases.push_back(attention_cached_case(dt, 9, 40, 6, 1, 40));    // several queries, MQA, odd D
    cases.push_back(kv_cache_write_case(dt, 1, 20, 2, 64));
    cases.push_back(kv_cache_write_case(dt, 9, 40, 3, 24));
    cases.push_back(swiglu_case(dt));
    cases.push_back(dropout_case(dt, DType::f32, 0.25f));
  }
  cases.push_back(dropout_case(DType::f32, DType::bf16, 0.1f));
  const GemvShape gemv_shapes[] = {
      {QuantType::nf4, true, false, 64, 160, 40},
      {QuantType::fp4, false, true, 32, 1056, 24},
      {QuantType::nf4, false, true, 128, 75, 19},
      {QuantType::fp4, true, false, 64, 96, 33},
      // More steps per warp than the MMA kernel's ring of loads holds, a partial last step.
      {QuantType::nf4, true, true, 64, 5152, 24},
      // K a multiple of 64 and B >= 64 (every Llama shape): a lane's two chunks share one scale;
      // again more steps per warp than the ring holds, and partial last tiles.
      {QuantType::nf4, true, false, 64, 4608, 40},
      {QuantType::fp4, false, true, 128, 640, 17},
  };
  for (DType dt : dtypes)
    for (int64_t T : {1, 3, 8})
      for (const GemvShape& shape : gemv_shapes) cases.push_back(linear_4bit_gemv_case(dt, T, shape));
  for (DType from : dtypes)
    for (DType to : dtypes)
      if (from != to) cases.push_back(cast_case(from, to));
  return cases;
}

}  // namespace

const std::vector<OpCase>& backend_op_cases() {
  static const std::vector<OpCase> cases = build_cases();
  return cases;
}

Tensors make_inputs(const OpCase& op_case, std::mt19937_64& rng) {
  Tensors inputs;
  for (const InputSpec& spec : op_case.inputs) {
    std::vector<double> values(shape_numel(spec.shape));
    if (spec.kind == InputSpec::Kind::normal) {
      std::normal_distribution<double> draw(spec.mean, spec.scale);
      for (double& v : values) v = draw(rng);
    } else {
      std::uniform_int_distribution<int64_t> draw(0, spec.limit - 1);
      for (double& v : values) v = static_cast<double>(draw(rng));
    }
    inputs.push_back(host_tensor(spec.dtype, spec.shape, values));
  }
  return inputs;
}

Values run_on_backend(const OpCase& op_case, Backend& backend, const Tensors& host_inputs) {
  // 256 bytes keep the output as aligned as a fresh allocation, so vector loads stay legal.
  constexpr size_t kGuard = 256;
  constexpr uint8_t kPoison = 0xff;  // all-ones is a NaN in F32, F16 and BF16
  const Device device = backend.device();
  Tensors inputs;
  for (const Tensor& h : host_inputs) inputs.push_back(h.to(device));
  Tensors buffers, outputs;
  for (const OutputSpec& spec : op_case.outputs) {
    const size_t bytes = static_cast<size_t>(shape_numel(spec.shape)) * dtype_size(spec.dtype);
    Tensor buffer = Tensor::empty({static_cast<int64_t>(bytes + 2 * kGuard)}, DType::u8, device);
    std::vector<uint8_t> poison(buffer.nbytes(), kPoison);
    copy_bytes(buffer.data(), device, poison.data(), Device::cpu, poison.size());
    outputs.push_back(Tensor::from_external(static_cast<uint8_t*>(buffer.data()) + kGuard, spec.shape, spec.dtype,
                                            device, std::make_shared<Tensor>(buffer)));
    buffers.push_back(buffer);
  }
  op_case.run(backend, inputs, outputs);
  backend.synchronize();
  Values result;
  for (size_t o = 0; o < buffers.size(); ++o) {
    Tensor host = buffers[o].to(Device::cpu);
    const uint8_t* bytes = host.data_as<uint8_t>();
    const size_t n = host.nbytes();
    int64_t touched = 0;
    for (size_t i = 0; i < kGuard; ++i) touched += (bytes[i] != kPoison) + (bytes[n - 1 - i] != kPoison);
    EXPECT_EQ(touched, 0) << "output " << o << ": guard bytes around the output were overwritten";
    Tensor out = Tensor::from_external(host.data_as<uint8_t>() + kGuard, op_case.outputs[o].shape,
                                       op_case.outputs[o].dtype, Device::cpu, std::make_shared<Tensor>(host));
    std::vector<double> values = doubles(out);
    int64_t not_finite = 0;
    for (double v : values) not_finite += !std::isfinite(v);
    EXPECT_EQ(not_finite, 0) << "output " << o << ": elements left unwritten (still the NaN poison) or not finite";
    result.push_back(std::move(values));
  }
  return result;
}

double relative_error(const std::vector<double>& out, const std::vector<double>& ref) {
  EXPECT_EQ(out.size(), ref.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size() && i < out.size(); ++i) {
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  EXPECT_GT(norm, 0.0) << "the reference is all zeros: the comparison would prove nothing";
  return std::sqrt(diff) / std::sqrt(norm);
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

Tensor on(Backend& b, DType dt, const Shape& shape, double value = 0.5) {
  return host_tensor(dt, shape, std::vector<double>(shape_numel(shape), value)).to(b.device());
}

}  // namespace

void check_rejects_bad_arguments(Backend& b) {
  const DType bf = DType::bf16;
  Tensor y = on(b, bf, {3, 4}), x = on(b, bf, {3, 5}), w_bad = on(b, bf, {4, 6}), w_f32 = on(b, DType::f32, {4, 5});
  expect_error_naming("linear_forward", [&] { b.linear_forward(y, x, w_bad, nullptr); });
  expect_error_naming("expected dtype BF16", [&] { b.linear_forward(y, x, w_f32, nullptr); });
  Tensor bias_bad = on(b, bf, {5});
  Tensor w = on(b, bf, {4, 5});
  expect_error_naming("bias", [&] { b.linear_forward(y, x, w, &bias_bad); });

  Tensor norm_out = on(b, bf, {3, 5}), norm_w = on(b, bf, {4});
  expect_error_naming("rmsnorm_forward", [&] { b.rmsnorm_forward(norm_out, x, norm_w, 1e-5f); });

  Tensor table = on(b, bf, {10, 4}), emb = on(b, bf, {3, 4});
  Tensor ids = host_tensor(DType::i32, {3}, {1, 10, 2}).to(b.device());
  // A GPU reports bad indexes at the next synchronize() (backend.h).
  expect_error_naming("has id 10", [&] { b.embedding_forward(emb, ids, table); b.synchronize(); });
  Tensor negative = host_tensor(DType::i32, {3}, {-1, 0, 2}).to(b.device());
  expect_error_naming("has id -1", [&] { b.embedding_forward(emb, negative, table); b.synchronize(); });

  RopeTable rope = rope_table_build(RopeConfig{}, 8, 16, b.device());
  Tensor q = on(b, bf, {3, 2, 8}), k = on(b, bf, {3, 1, 8});
  Tensor pos = host_tensor(DType::i32, {3}, {0, 16, 1}).to(b.device());
  expect_error_naming("position 16", [&] { b.rope_forward(q, k, pos, rope); b.synchronize(); });
  Tensor q_odd = on(b, bf, {3, 2, 6});
  Tensor k_odd = on(b, bf, {3, 1, 6});
  Tensor pos_ok = host_tensor(DType::i32, {3}, {0, 1, 2}).to(b.device());
  expect_error_naming("head_dim", [&] { b.rope_forward(q_odd, k_odd, pos_ok, rope); });

  Tensor att_q = on(b, bf, {4, 3, 8}), att_k = on(b, bf, {2, 1, 8}), att_out = on(b, bf, {4, 3, 8});
  expect_error_naming("S >= T", [&] { b.attention_forward(att_out, att_q, att_k, att_k); });
  Tensor kv2 = on(b, bf, {4, 2, 8});
  expect_error_naming("multiple of KVH", [&] { b.attention_forward(att_out, att_q, kv2, kv2); });
  Tensor cache_k = on(b, bf, {6, 1, 8}), cache_v = on(b, bf, {6, 1, 8});
  Tensor cached_pos = host_tensor(DType::i32, {4}, {0, 5, 6, 1}).to(b.device());
  expect_error_naming("position 6", [&] {
    b.attention_cached_forward(att_out, att_q, cache_k, cache_v, cached_pos);
    b.synchronize();
  });
  expect_error_naming("positions", [&] { b.attention_cached_forward(att_out, att_q, cache_k, cache_v, pos_ok); });
  Tensor new_k = on(b, bf, {4, 1, 8}), new_v = on(b, bf, {4, 1, 8});
  expect_error_naming("kv_cache_write: token 2 has position 6", [&] {
    b.kv_cache_write(cache_k, cache_v, new_k, new_v, cached_pos);
    b.synchronize();
  });
  Tensor wide_k = on(b, bf, {4, 2, 8});
  expect_error_naming("kv_cache_write", [&] { b.kv_cache_write(cache_k, cache_v, wide_k, wide_k, cached_pos); });

  Tensor a = on(b, bf, {2, 3}), c = on(b, bf, {3, 2}), out = on(b, bf, {2, 3});
  expect_error_naming("add_forward", [&] { b.add_forward(out, a, c); });
  expect_error_naming("swiglu_forward", [&] { b.swiglu_forward(out, a, c); });
  Tensor cast_out = on(b, DType::f32, {3, 3});
  expect_error_naming("cast", [&] { b.cast(cast_out, a); });
  Tensor dropped = on(b, DType::f32, {2, 3});
  expect_error_naming("p = 1", [&] { b.dropout(dropped, a, 1.0f, 0, 0); });
  expect_error_naming("dropout", [&] { b.dropout(cast_out, a, 0.1f, 0, 0); });
}

}  // namespace nibble::test
