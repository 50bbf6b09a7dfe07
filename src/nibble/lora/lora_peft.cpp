#include "nibble/lora/lora_peft.h"

#include <set>
#include <utility>
#include <vector>

#include "nibble/core/half.h"
#include "nibble/io/peft_adapter.h"

namespace nibble {

namespace {

// A stored lora tensor as fp32 [rows, cols], checked against what the model needs.
Tensor load_tensor(const PeftAdapterFiles& files, const std::string& name, int64_t rows, int64_t cols,
                   const std::string& module) {
  NIBBLE_CHECK(files.weights.contains(name), "{}: missing tensor {}; expected F32 [{}, {}] for {} (selected by {})",
               files.weights_path, name, rows, cols, module, files.config_path);
  const Shape& shape = files.weights.shape(name);
  NIBBLE_CHECK(shape == Shape({rows, cols}), "{}: tensor {} is {} {}; expected [{}, {}] for {} (r and the model's "
               "shape from {})", files.weights_path, name, files.weights.dtype_name(name), shape_to_string(shape),
               rows, cols, module, files.config_path);
  const std::string& dtype = files.weights.dtype_name(name);
  NIBBLE_CHECK(dtype == "F32" || dtype == "BF16" || dtype == "F16", "{}: tensor {} is {}; expected F32, BF16 or F16",
               files.weights_path, name, dtype);
  const Tensor stored = files.weights.tensor(name);
  Tensor out = Tensor::empty({rows, cols}, DType::f32);
  float* dst = out.data_as<float>();
  const int64_t n = rows * cols;
  if (stored.dtype() == DType::f32) {
    out.copy_from(stored);
  } else if (stored.dtype() == DType::bf16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(stored.data_as<bf16_t>()[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_float(stored.data_as<fp16_t>()[i]);
  }
  return out;
}

}  // namespace

LoraAdapter lora_load_peft(const std::string& dir, const ModelShape& shape) {
  PeftAdapterFiles files = read_peft_adapter(dir);
  LoraAdapter adapter;
  adapter.config = files.config;
  std::set<std::string> used;
  for (LoraTarget& t : lora_resolve_targets(files.config, shape, files.config_path)) {
    LoraLinear l;
    const std::string a_name = peft_lora_tensor_name(t.module, false);
    const std::string b_name = peft_lora_tensor_name(t.module, true);
    l.a = load_tensor(files, a_name, t.r, t.in, t.module);
    l.b = load_tensor(files, b_name, t.out, t.r, t.module);
    used.insert(a_name);
    used.insert(b_name);
    l.scaling = lora_scaling(t.alpha, t.r, files.config.use_rslora);
    l.target = std::move(t);
    adapter.linears.push_back(std::move(l));
  }
  for (const std::string& name : files.weights.names()) {
    NIBBLE_CHECK(used.count(name) != 0, "{}: unexpected tensor {}; {} selects no module of this name (an adapter for "
                 "another model, or a feature nibble does not support)", files.weights_path, name, files.config_path);
  }
  return adapter;
}

void lora_save_peft(const std::string& dir, const LoraAdapter& adapter) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const LoraLinear& l : adapter.linears) {
    tensors.emplace_back(peft_lora_tensor_name(l.target.module, false), l.a);
    tensors.emplace_back(peft_lora_tensor_name(l.target.module, true), l.b);
  }
  write_peft_adapter(dir, adapter.config, tensors);
}

}  // namespace nibble
