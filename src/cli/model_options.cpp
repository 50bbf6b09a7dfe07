#include "cli/model_options.h"

#include "nibble/core/error.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/lora/lora_peft.h"

namespace nibble::cli {

void add_model_options(CLI::App& sub, ModelOptions& o) {
  sub.add_option("--model", o.model_dir, "Hugging Face model folder (16-bit or bitsandbytes 4-bit)")->required();
  sub.add_option("--adapter", o.adapter_dir, "LoRA adapter folder (PEFT's or nibble's), applied unmerged");
  sub.add_option("--device", o.device, "cpu | cuda (default: cuda when a GPU is present)");
  sub.add_option("--dtype", o.dtype, "Compute dtype f32 | f16 | bf16 (default: the checkpoint's; bf16 for 4-bit)");
  sub.add_option("--quantize", o.quantize, "Quantize a 16-bit model on load: nf4 | fp4 (with double quant)");
}

Device choose_device(const std::string& name) {
  if (name.empty()) return cuda_available() ? Device::cuda : Device::cpu;
  return parse_device(name);
}

DType parse_compute_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "f16" || name == "float16") return DType::f16;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  fail("--dtype {}: expected f32, f16 or bf16", name);
}

LoadedModel load_model(const ModelOptions& o) {
  LoadedModel loaded;
  loaded.backend = make_backend(choose_device(o.device));
  LlamaLoadOptions load;
  if (!o.dtype.empty()) load.compute_dtype = parse_compute_dtype(o.dtype);
  if (!o.quantize.empty()) load.quantize = QuantConfig{parse_quant_type(o.quantize), 64, true};
  loaded.model = std::make_unique<LlamaModel>(LlamaModel::load(o.model_dir, *loaded.backend, load));
  if (!o.adapter_dir.empty()) {
    loaded.adapter = lora_load_peft(o.adapter_dir, model_shape_of(loaded.model->hyper(), o.model_dir));
    lora_attach(*loaded.model, *loaded.adapter);
  }
  return loaded;
}


}  // namespace nibble::cli
