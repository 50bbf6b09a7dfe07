#include "nibble/optim/optimizer.h"

#include <cmath>
#include <cstring>
#include <map>

#include "nibble/core/error.h"
#include "nibble/optim/adamw_cpu.h"

#if defined(NIBBLE_WITH_CUDA)
#include "nibble/core/cuda_check.h"
#include "nibble/optim/adamw_cuda.h"
#endif

namespace nibble {

std::string_view adamw_variant_name(AdamwVariant variant) {
  switch (variant) {
    case AdamwVariant::adamw: return "adamw";
    case AdamwVariant::paged_adamw_32bit: return "paged_adamw_32bit";
    case AdamwVariant::paged_adamw_8bit: return "paged_adamw_8bit";
  }
  return "?";
}

AdamwVariant parse_adamw_variant(std::string_view name) {
  if (name == "adamw" || name == "adamw_torch" || name == "adamw_32bit") return AdamwVariant::adamw;
  if (name == "paged_adamw_32bit") return AdamwVariant::paged_adamw_32bit;
  if (name == "paged_adamw_8bit") return AdamwVariant::paged_adamw_8bit;
  fail("unknown optimizer '{}': expected adamw (adamw_torch), paged_adamw_32bit or paged_adamw_8bit", name);
}

AdamwRule adamw_variant_rule(AdamwVariant variant) {
  return variant == AdamwVariant::adamw ? AdamwRule::torch : AdamwRule::bnb;
}

bool adamw_uses_8bit(int64_t numel, AdamwVariant variant) {
  return variant == AdamwVariant::paged_adamw_8bit && numel >= kOptim8bitMinNumel;
}

namespace {

int64_t blocks_of(int64_t numel) { return (numel + kOptim8bitBlocksize - 1) / kOptim8bitBlocksize; }

}  // namespace

int64_t adamw_state_bytes(int64_t numel, AdamwVariant variant) {
  if (!adamw_uses_8bit(numel, variant)) return 2 * numel * 4;
  return 2 * (numel + blocks_of(numel) * 4);
}

// m, v: float32 [n] or uint8 codes [n]; absmax1, absmax2: float32 [ceil(n/256)] (8-bit only).
struct AdamwOptimizer::ParamState {
  bool eight_bit = false;
  StateBuffer m, v, absmax1, absmax2;
};

AdamwOptimizer::AdamwOptimizer(AdamwVariant variant, const AdamwHyper& hyper, std::vector<OptimParam> params)
    : variant_(variant), hyper_(hyper), params_(std::move(params)) {
  NIBBLE_CHECK(hyper.beta1 >= 0.0 && hyper.beta1 < 1.0 && hyper.beta2 >= 0.0 && hyper.beta2 < 1.0,
               "AdamW betas must be in [0, 1), got ({}, {})", hyper.beta1, hyper.beta2);
  NIBBLE_CHECK(hyper.eps >= 0.0 && hyper.weight_decay >= 0.0,
               "AdamW eps and weight_decay must be >= 0, got {} and {}", hyper.eps, hyper.weight_decay);
  if (!params_.empty()) device_ = params_.front().param.device();
  std::map<std::string, int> seen;
  for (const OptimParam& p : params_) {
    NIBBLE_CHECK(seen.emplace(p.name, 0).second, "optimizer parameter '{}' is listed twice", p.name);
    NIBBLE_CHECK(p.param.dtype() == DType::f32 && p.grad.dtype() == DType::f32,
                 "optimizer parameter '{}': expected float32 parameter and gradient, got {} and {}", p.name,
                 p.param.describe(), p.grad.describe());
    NIBBLE_CHECK(p.param.shape() == p.grad.shape(), "optimizer parameter '{}': gradient {} does not match {}",
                 p.name, p.grad.describe(), p.param.describe());
    NIBBLE_CHECK(p.param.device() == device_ && p.grad.device() == device_,
                 "optimizer parameter '{}': expected parameter and gradient on {}, got {} and {}", p.name,
                 device_name(device_), p.param.describe(), p.grad.describe());
  }
#if !defined(NIBBLE_WITH_CUDA)
  NIBBLE_CHECK(device_ == Device::cpu, "an optimizer on cuda needs a build with CUDA");
#endif
  const bool paged = variant_ != AdamwVariant::adamw;
  for (const OptimParam& p : params_) {
    const int64_t n = p.param.numel();
    StatePlacement placement = StatePlacement::host;
    if (device_ == Device::cuda)
      placement = paged && n >= kPagedMinNumel ? StatePlacement::managed : StatePlacement::device;
    ParamState state;
    state.eight_bit = adamw_uses_8bit(n, variant_);
    const size_t element = state.eight_bit ? 1 : 4;
    state.m = StateBuffer(static_cast<size_t>(n) * element, placement);
    state.v = StateBuffer(static_cast<size_t>(n) * element, placement);
    if (state.eight_bit) {
      // Zero codes with zero absmax dequantize to (-)0, as bitsandbytes' zero-filled buffers do.
      const StatePlacement small = placement == StatePlacement::managed ? StatePlacement::device : placement;
      state.absmax1 = StateBuffer(static_cast<size_t>(blocks_of(n)) * 4, small);
      state.absmax2 = StateBuffer(static_cast<size_t>(blocks_of(n)) * 4, small);
    }
    states_.push_back(std::move(state));
  }
#if defined(NIBBLE_WITH_CUDA)
  if (device_ == Device::cuda) {
    std::vector<AdamwSlice> slices;
    std::vector<AdamwChunk> chunks;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (states_[i].eight_bit) continue;
      const int64_t n = params_[i].param.numel();
      const int32_t index = static_cast<int32_t>(slices.size());
      slices.push_back(AdamwSlice{params_[i].param.data_as<float>(), params_[i].grad.data_as<float>(),
                                  static_cast<float*>(states_[i].m.data()), static_cast<float*>(states_[i].v.data()),
                                  n});
      for (int64_t start = 0; start < n; start += kAdamwChunk) chunks.push_back(AdamwChunk{index, start});
    }
    chunk_count_ = static_cast<int64_t>(chunks.size());
    slices_ = StateBuffer(slices.size() * sizeof(AdamwSlice), StatePlacement::device);
    chunks_ = StateBuffer(chunks.size() * sizeof(AdamwChunk), StatePlacement::device);
    copy_bytes(slices_.data(), Device::cuda, slices.data(), Device::cpu, slices_.bytes());
    copy_bytes(chunks_.data(), Device::cuda, chunks.data(), Device::cpu, chunks_.bytes());
  }
#endif
}

AdamwOptimizer::~AdamwOptimizer() = default;
AdamwOptimizer::AdamwOptimizer(AdamwOptimizer&&) noexcept = default;
AdamwOptimizer& AdamwOptimizer::operator=(AdamwOptimizer&&) noexcept = default;

int64_t AdamwOptimizer::state_bytes() const {
  int64_t total = 0;
  for (const OptimParam& p : params_) total += adamw_state_bytes(p.param.numel(), variant_);
  return total;
}

void AdamwOptimizer::step(double lr) {
  NIBBLE_CHECK(lr >= 0.0 && std::isfinite(lr), "learning rate must be finite and >= 0, got {}", lr);
  ++step_;
  const AdamwRule rule = adamw_variant_rule(variant_);
  const AdamwStepScalars s = adamw_step_scalars(rule, hyper_, lr, step_);
  if (device_ == Device::cpu) {
    for (size_t i = 0; i < params_.size(); ++i) {
      ParamState& st = states_[i];
      float* p = params_[i].param.data_as<float>();
      const float* g = params_[i].grad.data_as<float>();
      const int64_t n = params_[i].param.numel();
      if (st.eight_bit)
        adamw8bit_update_cpu(s, p, g, static_cast<uint8_t*>(st.m.data()), static_cast<uint8_t*>(st.v.data()),
                             static_cast<float*>(st.absmax1.data()), static_cast<float*>(st.absmax2.data()), n);
      else
        adamw_update_cpu(rule, s, p, g, static_cast<float*>(st.m.data()), static_cast<float*>(st.v.data()), n);
    }
    return;
  }
#if defined(NIBBLE_WITH_CUDA)
  for (size_t i = 0; i < params_.size(); ++i) {
    ParamState& st = states_[i];
    st.m.prefetch_to_device();
    st.v.prefetch_to_device();
    if (!st.eight_bit) continue;
    adamw8bit_update_cuda(s, params_[i].param.data_as<float>(), params_[i].grad.data_as<float>(),
                          static_cast<uint8_t*>(st.m.data()), static_cast<uint8_t*>(st.v.data()),
                          static_cast<float*>(st.absmax1.data()), static_cast<float*>(st.absmax2.data()),
                          params_[i].param.numel(), 0);
  }
  adamw_update_cuda(rule, s, static_cast<const AdamwSlice*>(slices_.data()),
                    static_cast<const AdamwChunk*>(chunks_.data()), chunk_count_, 0);
#endif
}

namespace {

struct Expected {
  std::string name;
  DType dtype;
  Shape shape;
  const StateBuffer* buffer;
};

}  // namespace

std::vector<std::pair<std::string, Tensor>> AdamwOptimizer::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  Tensor step = Tensor::empty({1}, DType::i64);
  step.data_as<int64_t>()[0] = step_;
  out.emplace_back("optimizer.step", step);
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string prefix = "optimizer." + params_[i].name;
    const ParamState& st = states_[i];
    const Shape& shape = params_[i].param.shape();
    std::vector<Expected> parts;
    if (st.eight_bit) {
      const Shape blocks{blocks_of(params_[i].param.numel())};
      parts = {{prefix + ".exp_avg.codes", DType::u8, shape, &st.m},
               {prefix + ".exp_avg.absmax", DType::f32, blocks, &st.absmax1},
               {prefix + ".exp_avg_sq.codes", DType::u8, shape, &st.v},
               {prefix + ".exp_avg_sq.absmax", DType::f32, blocks, &st.absmax2}};
    } else {
      parts = {{prefix + ".exp_avg", DType::f32, shape, &st.m}, {prefix + ".exp_avg_sq", DType::f32, shape, &st.v}};
    }
    for (const Expected& e : parts) {
      Tensor t = Tensor::empty(e.shape, e.dtype);
      copy_bytes(t.data(), Device::cpu, e.buffer->data(), e.buffer->device(), t.nbytes());
      out.emplace_back(e.name, t);
    }
  }
  return out;
}

void AdamwOptimizer::load_state_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& entry : tensors) by_name[entry.first] = &entry.second;
  auto find = [&](const std::string& name, DType dtype, const Shape& shape) -> const Tensor& {
    auto it = by_name.find(name);
    NIBBLE_CHECK(it != by_name.end(), "optimizer state '{}' is missing ({} expects it)", name,
                 adamw_variant_name(variant_));
    const Tensor& t = *it->second;
    NIBBLE_CHECK(t.dtype() == dtype && t.shape() == shape, "optimizer state '{}' is {}: expected {}{}", name,
                 t.describe(), dtype_safetensors_name(dtype), shape_to_string(shape));
    return t;
  };
  // Validate everything before changing anything, so a bad checkpoint leaves the state as it was.
  const Tensor& step = find("optimizer.step", DType::i64, {1});
  Tensor step_cpu = step.to(Device::cpu);
  const int64_t new_step = step_cpu.data_as<int64_t>()[0];
  NIBBLE_CHECK(new_step >= 0, "optimizer.step is {}: expected a count >= 0", new_step);
  std::vector<std::pair<const Tensor*, const StateBuffer*>> copies;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string prefix = "optimizer." + params_[i].name;
    const ParamState& st = states_[i];
    const Shape& shape = params_[i].param.shape();
    if (st.eight_bit) {
      const Shape blocks{blocks_of(params_[i].param.numel())};
      copies.emplace_back(&find(prefix + ".exp_avg.codes", DType::u8, shape), &st.m);
      copies.emplace_back(&find(prefix + ".exp_avg.absmax", DType::f32, blocks), &st.absmax1);
      copies.emplace_back(&find(prefix + ".exp_avg_sq.codes", DType::u8, shape), &st.v);
      copies.emplace_back(&find(prefix + ".exp_avg_sq.absmax", DType::f32, blocks), &st.absmax2);
    } else {
      copies.emplace_back(&find(prefix + ".exp_avg", DType::f32, shape), &st.m);
      copies.emplace_back(&find(prefix + ".exp_avg_sq", DType::f32, shape), &st.v);
    }
  }
  for (const auto& c : copies)
    copy_bytes(c.second->data(), c.second->device(), c.first->data(), c.first->device(), c.second->bytes());
  step_ = new_step;
}

}  // namespace nibble
