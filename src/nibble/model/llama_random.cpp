// LlamaModel::random: the benchmark's model, built without files.
#include <map>
#include <memory>
#include <random>
#include <utility>

#include "nibble/core/half.h"
#include "nibble/model/llama.h"
#include "nibble/quant/quantize.h"

namespace nibble {

namespace {

// Uniform on [-a, a] with a = 0.02 * sqrt(3) (standard deviation 0.02), in `dtype` on the CPU.
Tensor random_host(const Shape& shape, DType dtype, Backend& cpu, std::mt19937_64& rng) {
  Tensor f = Tensor::empty(shape, DType::f32);
  std::uniform_real_distribution<float> uniform(-0.0346410f, 0.0346410f);
  float* p = f.data_as<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = uniform(rng);
  if (dtype == DType::f32) return f;
  Tensor out = Tensor::empty(shape, dtype);
  cpu.cast(out, f);
  return out;
}

Tensor ones(int64_t n, DType dtype, Device device, Backend& cpu) {
  Tensor f = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) f.data_as<float>()[i] = 1.0f;
  Tensor out = Tensor::empty({n}, dtype);
  cpu.cast(out, f);
  return out.to(device, MemoryCategory::unquantized);
}

}  // namespace

LlamaModel LlamaModel::random(const LlamaHyper& hyper, Backend& backend, DType compute_dtype,
                              const std::optional<QuantConfig>& quantize, uint64_t seed) {
  LlamaModel m;
  m.hyper_ = hyper;
  m.backend_ = &backend;
  m.dtype_ = compute_dtype;
  const Device device = backend.device();
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::mt19937_64 rng(seed);
  std::map<std::pair<int64_t, int64_t>, Tensor> dense;  // one draw per [N, K], on the device
  int64_t workspace_elements = 0;
  auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias, bool quantizable) {
    LlamaLinear l;
    l.name = name;
    l.out = out;
    l.in = in;
    Tensor& w = dense[{out, in}];
    if (!w.defined() || w.numel() == 0)
      w = random_host({out, in}, compute_dtype, *cpu, rng).to(device, MemoryCategory::base_weights);
    if (quantize && quantizable) {
      l.weight_4bit = quantize_4bit(w, *quantize);
      workspace_elements = std::max(workspace_elements, out * in);
    } else {
      l.weight = w;
    }
    if (bias) l.bias = random_host({out}, compute_dtype, *cpu, rng).to(device, MemoryCategory::unquantized);
    return l;
  };
  const LlamaHyper& h = hyper;
  const int64_t q_out = h.heads * h.head_dim, kv_out = h.kv_heads * h.head_dim;
  m.embed_ = random_host({h.vocab, h.hidden}, compute_dtype, *cpu, rng).to(device, MemoryCategory::unquantized);
  for (int64_t i = 0; i < h.layers; ++i) {
    LlamaBlock b;
    const std::string p = "model.layers." + std::to_string(i) + ".";
    b.input_norm = ones(h.hidden, compute_dtype, device, *cpu);
    b.q = linear(p + "self_attn.q_proj", q_out, h.hidden, h.qkv_bias, true);
    b.k = linear(p + "self_attn.k_proj", kv_out, h.hidden, h.qkv_bias, true);
    b.v = linear(p + "self_attn.v_proj", kv_out, h.hidden, h.qkv_bias, true);
    b.o = linear(p + "self_attn.o_proj", h.hidden, q_out, h.o_bias, true);
    b.post_norm = ones(h.hidden, compute_dtype, device, *cpu);
    b.gate = linear(p + "mlp.gate_proj", h.intermediate, h.hidden, h.mlp_bias, true);
    b.up = linear(p + "mlp.up_proj", h.intermediate, h.hidden, h.mlp_bias, true);
    b.down = linear(p + "mlp.down_proj", h.hidden, h.intermediate, h.mlp_bias, true);
    m.blocks_.push_back(std::move(b));
  }
  if (quantize) dense.clear();  // the 16-bit draws were only the quantizer's input
  m.norm_ = ones(h.hidden, compute_dtype, device, *cpu);
  if (h.tied_embeddings) {
    m.lm_head_ = LlamaLinear{"lm_head (tied)", h.vocab, h.hidden, m.embed_, std::nullopt, Tensor()};
  } else {
    m.lm_head_ = LlamaLinear{"lm_head", h.vocab, h.hidden,
                             random_host({h.vocab, h.hidden}, compute_dtype, *cpu, rng)
                                 .to(device, MemoryCategory::unquantized),
                             std::nullopt, Tensor()};
  }
  m.finish_setup(workspace_elements);
  return m;
}

}  // namespace nibble
