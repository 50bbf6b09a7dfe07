// nibble merge: a base model with a LoRA adapter folded into its weights, W' = W + scaling B A
// (lora/lora_merge.h), written as a plain Hugging Face folder that transformers and nibble load
// without PEFT: config.json (the base's, quantization_config removed, torch_dtype set),
// model.safetensors with HF tensor names, and the tokenizer files.
//
// A bitsandbytes 4-bit base is dequantized (quant/'s dequantize, fp32) before the adapter is
// added, and the result is not quantized again: merging into 4 bits would round the small LoRA
// update away. Every floating tensor is written in --dtype (default bf16, QLoRA's compute dtype);
// each merged weight is rounded once, from fp32.
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/output_folder.h"
#include "cli/progress.h"
#include "nibble/backend/backend.h"
#include "nibble/core/error.h"
#include "nibble/io/atomic_file.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/python_json.h"
#include "nibble/io/safetensors.h"
#include "nibble/lora/lora_merge.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/model/llama_checkpoint.h"
#include "nibble/quant/quantize.h"

namespace nibble::cli {

namespace fs = std::filesystem;

namespace {

struct MergeOptions {
  std::string model_dir;
  std::string adapter_dir;
  std::string out_dir;
  std::string dtype = "bf16";
};

DType parse_merge_dtype(const std::string& name) {
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "fp16" || name == "f16" || name == "float16") return DType::f16;
  if (name == "fp32" || name == "f32" || name == "float32") return DType::f32;
  fail("--dtype {}: expected bf16, fp16 or fp32", name);
}

// Writes the merged folder's tensors one by one, counting what it does for the report.
class MergedTensors {
 public:
  MergedTensors(const LoraAdapter& adapter, DType out, int64_t linears)
      : adapter_(adapter), out_(out), cpu_(make_cpu_backend()), progress_("merging", linears) {}

  void add_plain(const std::string& name, const Tensor& t) {
    Tensor converted = t;
    if (t.dtype() != out_) {
      converted = Tensor::empty(t.shape(), out_);
      cpu_->cast(converted, t);
    }
    add(name, std::move(converted));
  }

  // A projection: merged when the adapter targets it, else dequantized or converted as it is.
  void add_linear(const LlamaCheckpointLinear& l) {
    progress_.update(linears_done_++, l.name);
    const LoraLinear* lora = adapter_.find(l.name);
    const std::string weight = l.name + ".weight";
    if (lora != nullptr) {
      add(weight, l.weight_4bit ? lora_merge_4bit(*l.weight_4bit, *lora, out_) : lora_merge(l.weight, *lora, out_));
      ++merged_;
    } else if (l.weight_4bit) {
      add(weight, dequantize_4bit(*l.weight_4bit, out_).reshape(l.weight_4bit->shape));
    } else {
      add_plain(weight, l.weight);
    }
    dequantized_ += l.weight_4bit ? 1 : 0;
    if (l.bias.defined()) add_plain(l.name + ".bias", l.bias);
  }

  void finish() { progress_.finish(); }
  const std::vector<std::pair<std::string, Tensor>>& tensors() const { return tensors_; }
  int64_t merged() const { return merged_; }
  int64_t dequantized() const { return dequantized_; }
  int64_t bytes() const { return bytes_; }

 private:
  void add(const std::string& name, Tensor t) {
    bytes_ += static_cast<int64_t>(t.nbytes());
    tensors_.emplace_back(name, std::move(t));
  }

  const LoraAdapter& adapter_;
  DType out_;
  std::unique_ptr<Backend> cpu_;
  ProgressBar progress_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
  int64_t linears_done_ = 0, merged_ = 0, dequantized_ = 0, bytes_ = 0;
};

// The base's config.json as transformers would save the merged model: no quantization_config,
// the dtype of the written tensors under the key(s) the base used (torch_dtype by default).
void write_merged_config(const std::string& model_dir, const fs::path& out_dir, DType dtype) {
  nlohmann::ordered_json config = read_config_json(model_dir);
  config.erase("quantization_config");
  const std::string name(dtype_torch_name(dtype));
  if (config.contains("dtype")) config["dtype"] = name;
  if (config.contains("torch_dtype") || !config.contains("dtype")) config["torch_dtype"] = name;
  write_file_atomically((out_dir / "config.json").string(), python_json_dumps(config, 2, true) + "\n");
}

void run_merge(const MergeOptions& o) {
  const DType out_dtype = parse_merge_dtype(o.dtype);
  const fs::path out(o.out_dir);
  check_output_folder_free(out);
  const LlamaCheckpoint base = read_llama_checkpoint(o.model_dir);
  const LoraAdapter adapter = lora_load_peft(o.adapter_dir, model_shape_of(base.hyper, o.model_dir));

  StagingFolder staging(out);
  MergedTensors merged(adapter, out_dtype, 7 * base.hyper.layers + (base.hyper.tied_embeddings ? 0 : 1));
  merged.add_plain("model.embed_tokens.weight", base.embed);
  for (size_t i = 0; i < base.blocks.size(); ++i) {
    const LlamaCheckpointBlock& b = base.blocks[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    merged.add_plain(p + "input_layernorm.weight", b.input_norm);
    for (const LlamaCheckpointLinear* l : {&b.q, &b.k, &b.v, &b.o}) merged.add_linear(*l);
    merged.add_plain(p + "post_attention_layernorm.weight", b.post_norm);
    for (const LlamaCheckpointLinear* l : {&b.gate, &b.up, &b.down}) merged.add_linear(*l);
  }
  merged.add_plain("model.norm.weight", base.norm);
  if (!base.hyper.tied_embeddings) merged.add_linear(base.lm_head);
  NIBBLE_CHECK(merged.merged() == static_cast<int64_t>(adapter.linears.size()),
               "{}: merged {} of the adapter's {} modules", o.adapter_dir, merged.merged(), adapter.linears.size());

  save_safetensors((staging.path() / "model.safetensors").string(), merged.tensors());
  write_merged_config(o.model_dir, staging.path(), out_dtype);
  copy_tokenizer_files(o.model_dir, staging.path());
  staging.commit();
  merged.finish();

  fmt::print("merged {} adapter modules of {} (r {}, lora_alpha {}) into {}{}\n", merged.merged(), o.adapter_dir,
             adapter.config.r, adapter.config.lora_alpha, o.model_dir,
             merged.dequantized() > 0 ? fmt::format(" ({} 4-bit linears dequantized)", merged.dequantized()) : "");
  fmt::print("wrote {} ({} tensors, {}, {})\n", out.string(), merged.tensors().size(),
             dtype_torch_name(out_dtype), format_bytes(merged.bytes()));
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* sub = app.add_subcommand("merge", "Fold a LoRA adapter into its base model, written as an HF folder");
  sub->add_option("--model", o->model_dir, "Base model folder (16-bit, or bitsandbytes 4-bit: dequantized)")
      ->required();
  sub->add_option("--adapter", o->adapter_dir, "LoRA adapter folder (PEFT's or nibble's)")->required();
  sub->add_option("--out", o->out_dir, "Output folder (must not exist, or be empty)")->required();
  sub->add_option("--dtype", o->dtype, "bf16 | fp16 | fp32: dtype of every written tensor")->capture_default_str();
  sub->callback([o] { run_merge(*o); });
}

}  // namespace nibble::cli
