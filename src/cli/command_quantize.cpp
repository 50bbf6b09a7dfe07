// nibble quantize: an HF model folder in, a bitsandbytes-layout 4-bit folder out, which
// transformers loads as it is. The decoder blocks' seven linears are quantized; embeddings,
// lm_head, norms and biases stay as they are, as transformers does.
#include <filesystem>
#include <memory>
#include <regex>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_options.h"
#include "cli/output_folder.h"
#include "cli/progress.h"
#include "nibble/core/error.h"
#include "nibble/io/bnb_checkpoint.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/safetensors.h"
#include "nibble/quant/quantize.h"
#include "nibble/quant/sizes.h"

namespace nibble::cli {

namespace fs = std::filesystem;

namespace {

struct QuantizeOptions {
  std::string model_dir;
  std::string out_dir;
  std::string quant_type = "nf4";
  bool double_quant = true;
  int64_t blocksize = 64;
  std::string device;
};

bool is_block_linear_weight(const std::string& name) {
  static const std::regex pattern(
      R"(^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$)");
  return std::regex_match(name, pattern);
}

void run_quantize(const QuantizeOptions& options) {
  QuantConfig config;
  config.type = parse_quant_type(options.quant_type);
  config.double_quant = options.double_quant;
  config.blocksize = options.blocksize;
  const Device device = choose_device(options.device);

  const fs::path out(options.out_dir);
  check_output_folder_free(out);
  ModelConfig model_config = load_model_config(options.model_dir);
  NIBBLE_CHECK(!model_config.quantization.has_value(),
               "{} is already quantized (config.json has a quantization_config): give the original model",
               options.model_dir);
  SafetensorsModel model = SafetensorsModel::open(options.model_dir);

  StagingFolder staging(out);
  std::vector<std::pair<std::string, Tensor>> tensors;
  int64_t quantized_tensors = 0, quantized_params = 0, packed_bytes = 0, constants_dq = 0, constants_plain = 0;
  int64_t linear_count = 0;
  for (const std::string& name : model.names()) linear_count += is_block_linear_weight(name) ? 1 : 0;
  NIBBLE_CHECK(linear_count > 0, "{}: no decoder-block linear weights (model.layers.N.self_attn.q_proj.weight, ...)",
               options.model_dir);

  ProgressBar progress("quantizing", linear_count);
  for (const std::string& name : model.names()) {
    if (!is_block_linear_weight(name)) {
      tensors.emplace_back(name, model.tensor(name));
      continue;
    }
    progress.update(quantized_tensors, name);
    Tensor weight = model.tensor(name);
    NIBBLE_CHECK(weight.rank() == 2 && dtype_is_float(weight.dtype()),
                 "{}: tensor {} is {}: expected a 2-D F32, F16 or BF16 weight", options.model_dir, name,
                 weight.describe());
    if (device != Device::cpu) weight = weight.to(device, MemoryCategory::workspace);
    QuantizedWeight q = quantize_4bit(weight, config);
    const int64_t n = q.numel();
    quantized_params += n;
    packed_bytes += quant_packed_bytes(n);
    constants_dq += quant_constant_bytes(n, config.blocksize, true);
    constants_plain += quant_constant_bytes(n, config.blocksize, false);
    for (auto& entry : bnb_weight_tensors(name.substr(0, name.size() - std::string(".weight").size()), q))
      tensors.push_back(std::move(entry));
    ++quantized_tensors;
  }
  progress.update(quantized_tensors, "writing model.safetensors");
  save_safetensors((staging.path() / "model.safetensors").string(), tensors);
  BnbQuantizationConfig written;
  written.quant_type = config.type;
  written.double_quant = config.double_quant;
  save_quantized_model_config(staging.path().string(), read_config_json(options.model_dir), written);
  copy_tokenizer_files(options.model_dir, staging.path());
  staging.commit();
  progress.finish();

  const double seconds = progress.elapsed_seconds();
  const int64_t constants = config.double_quant ? constants_dq : constants_plain;
  fmt::print("quantized {} tensors ({} parameters) to {}{}, blocks of {}, on {} in {:.1f} s\n", quantized_tensors,
             format_count(quantized_params), quant_type_name(config.type), config.double_quant ? " + DQ" : "",
             config.blocksize, device_name(device), seconds);
  fmt::print("  4-bit weights          {:>14}\n", format_bytes(packed_bytes));
  fmt::print("  constants without DQ   {:>14}   {:.3f} bits/param{}\n", format_bytes(constants_plain),
             quant_constant_bits_per_param(config.blocksize, false), config.double_quant ? "" : " (used)");
  fmt::print("  constants with DQ      {:>14}   {:.3f} bits/param{}\n", format_bytes(constants_dq),
             quant_constant_bits_per_param(config.blocksize, true), config.double_quant ? " (used)" : "");
  fmt::print("  bits per parameter     {:>14.3f}   (weights and constants, per-tensor tables included)\n",
             8.0 * static_cast<double>(packed_bytes + constants) / static_cast<double>(quantized_params));
  fmt::print("wrote {}\n", out.string());
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto options = std::make_shared<QuantizeOptions>();
  CLI::App* sub = app.add_subcommand("quantize", "Quantize an HF model folder to bitsandbytes' 4-bit layout");
  sub->add_option("--model", options->model_dir, "Hugging Face model folder (bf16/fp16/fp32 safetensors)")
      ->required();
  sub->add_option("--out", options->out_dir, "Output folder (must not exist, or be empty)")->required();
  sub->add_option("--quant-type", options->quant_type, "nf4 | fp4 (bnb_4bit_quant_type)")->capture_default_str();
  sub->add_flag("--double-quant,!--no-double-quant", options->double_quant,
                "Quantize the absmax constants again (bnb_4bit_use_double_quant; default on)");
  sub->add_option("--blocksize", options->blocksize, "Weights per absmax block (32..4096)")->capture_default_str();
  sub->add_option("--device", options->device, "cpu | cuda (default: cuda when a GPU is present)");
  sub->callback([options] { run_quantize(*options); });
}

}  // namespace nibble::cli
