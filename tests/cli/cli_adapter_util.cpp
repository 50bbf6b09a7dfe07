#include "tests/cli/cli_adapter_util.h"

#include <algorithm>
#include <cmath>

#include "nibble/backend/backend.h"
#include "nibble/io/hf_config.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/model/llama.h"

namespace nibble::testing {

void write_tiny_model_with_tokenizer(const std::string& dir, DType dtype, uint64_t seed) {
  TinyModelSpec spec;
  spec.vocab = 3000;
  spec.dtype = dtype;
  spec.seed = seed;
  write_tiny_llama(dir, spec);
  write_tiny_tokenizer(dir);
}

LoraAdapter write_adapter(const std::string& model_dir, const std::string& adapter_dir, LoraInit init,
                          uint64_t seed) {
  LoraConfig config;
  config.r = 4;
  config.lora_alpha = 8;
  config.init_lora_weights = init;
  const ModelShape shape = model_shape_from_config(load_model_config(model_dir), model_dir);
  LoraAdapter adapter = lora_init(config, shape, seed);
  lora_save_peft(adapter_dir, adapter);
  return adapter;
}

std::vector<float> model_logits(const std::string& model_dir, const std::string& adapter_dir,
                                const std::vector<int32_t>& ids, DType compute) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  LlamaLoadOptions options;
  options.compute_dtype = compute;
  LlamaModel model = LlamaModel::load(model_dir, *backend, options);
  if (!adapter_dir.empty())
    lora_attach(model, lora_load_peft(adapter_dir, model_shape_of(model.hyper(), model_dir)));
  KvCache cache = model.make_cache(static_cast<int64_t>(ids.size()));
  const Tensor logits = model.forward(ids, cache);
  const float* p = logits.data_as<float>();
  return std::vector<float>(p, p + logits.numel());
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float x : a) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

}  // namespace nibble::testing
