// nibble memory: the GPU memory of a QLoRA run, part by part, before anything is loaded.
#include <cmath>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "nibble/io/hf_config.h"
#include "nibble/core/error.h"
#include "nibble/model/memory_plan.h"

namespace nibble::cli {

namespace {

struct MemoryOptions {
  std::string model_dir;
  std::string preset;
  TrainShape train;
  std::string optimizer = "paged_adamw_32bit";
  std::string quant_type = "nf4";
  bool json = false;
};

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

nlohmann::json plan_to_json(const MemoryPlan& plan) {
  nlohmann::json parts = nlohmann::json::array();
  for (const MemoryPart& p : plan.parts)
    parts.push_back({{"name", p.name}, {"category", memory_category_name(p.category)}, {"bytes", p.bytes},
                     {"on_gpu", p.on_gpu}, {"detail", p.detail}});
  const TrainShape& t = plan.train;
  return {
      {"model", plan.model.name},
      {"seq_len", t.seq_len}, {"batch", t.batch}, {"lora_r", t.lora_rank},
      {"lora_targets", t.lora_targets}, {"gradient_checkpointing", t.gradient_checkpointing},
      {"optim", adamw_variant_name(t.optimizer)}, {"quant_type", quant_type_name(t.quant.type)},
      {"double_quant", t.quant.double_quant}, {"blocksize", t.quant.blocksize},
      {"parts", parts},
      {"gpu_total_bytes", plan.gpu_total},
      {"paged_bytes", plan.paged_total},
      {"quantized_params", plan.quantized_params},
      {"unquantized_params", plan.unquantized_params},
      {"lora_params", plan.lora_params},
      {"constant_bits_per_param_without_dq", plan.bits_per_param_without_dq},
      {"constant_bits_per_param_with_dq", plan.bits_per_param_with_dq},
      {"dq_saving_bytes", plan.constants_without_dq - plan.constants_with_dq},
  };
}

void print_plan(const MemoryPlan& plan) {
  const TrainShape& t = plan.train;
  fmt::print("nibble memory: {}: QLoRA {}{} (blocks of {}), {} x {} tokens, LoRA r={} on {} linears a block,\n"
             "  gradient checkpointing {}, {}\n\n",
             plan.model.name, quant_type_name(t.quant.type), t.quant.double_quant ? " + DQ" : "",
             t.quant.blocksize, t.batch, t.seq_len, t.lora_rank, t.lora_targets.size(),
             t.gradient_checkpointing ? "on" : "off", adamw_variant_name(t.optimizer));
  fmt::print("  {:<36} {:>10}  {:<7} {}\n", "part", "GiB", "counted", "detail");
  for (const MemoryPart& p : plan.parts) {
    bool paged = !p.on_gpu && p.category == MemoryCategory::optimizer;
    fmt::print("  {:<36} {:>10.3f}  {:<7} {}\n", p.name, gib(p.bytes), p.on_gpu ? "GPU" : paged ? "paged" : "-",
               p.detail);
  }
  fmt::print("  {:<36} {:>10.3f}\n", "total on the GPU", gib(plan.gpu_total));
  if (plan.paged_total > 0) fmt::print("  {:<36} {:>10.3f}\n", "paged (host-backed)", gib(plan.paged_total));

  const double saved_bits = plan.bits_per_param_without_dq - plan.bits_per_param_with_dq;
  const int64_t saved_bytes = plan.constants_without_dq - plan.constants_with_dq;
  fmt::print("\nDouble Quantization: the block constants cost {:.3f} bits/param without DQ and {:.3f} with it,\n"
             "{:.3f} bits/param saved: {:.2f} GB ({:.2f} GiB) on this model's {:.2f} B quantized parameters.\n",
             plan.bits_per_param_without_dq, plan.bits_per_param_with_dq, saved_bits, saved_bytes / 1e9,
             gib(saved_bytes), plan.quantized_params / 1e9);
}

void run_memory(const MemoryOptions& options) {
  NIBBLE_CHECK(options.model_dir.empty() != options.preset.empty(),
               "give exactly one of --model DIR or --preset NAME");
  ModelShape shape;
  if (!options.preset.empty()) {
    auto preset = model_preset(options.preset);
    NIBBLE_CHECK(preset.has_value(), "unknown preset '{}': expected one of {}", options.preset,
                 fmt::join(model_preset_names(), ", "));
    shape = *preset;
  } else {
    std::string name = std::filesystem::path(options.model_dir).lexically_normal().filename().string();
    shape = model_shape_from_config(load_model_config(options.model_dir), name.empty() ? options.model_dir : name);
  }
  TrainShape train = options.train;
  train.optimizer = parse_adamw_variant(options.optimizer);
  train.quant.type = parse_quant_type(options.quant_type);
  MemoryPlan plan = plan_memory(shape, train);
  if (options.json)
    fmt::print("{}\n", plan_to_json(plan).dump(2));
  else
    print_plan(plan);
}

}  // namespace

void add_memory_command(CLI::App& app) {
  auto options = std::make_shared<MemoryOptions>();
  CLI::App* sub = app.add_subcommand("memory", "Predict the GPU memory of a QLoRA run, part by part");
  sub->add_option("--model", options->model_dir, "Hugging Face model folder (config.json)");
  sub->add_option("--preset", options->preset,
                  "A known shape: llama-7b, llama-13b, llama-33b, llama-65b, llama2-70b, llama3-8b, llama3-70b");
  sub->add_option("--seq-len", options->train.seq_len, "Tokens per sequence")->capture_default_str();
  sub->add_option("--batch", options->train.batch, "Sequences per micro-batch")->capture_default_str();
  sub->add_option("--lora-r", options->train.lora_rank, "LoRA rank")->capture_default_str();
  sub->add_option("--lora-targets", options->train.lora_targets, "Adapted linears (HF names)")
      ->delimiter(',')->capture_default_str();
  sub->add_flag("--gradient-checkpointing,!--no-gradient-checkpointing", options->train.gradient_checkpointing,
                "Save only each block's input and recompute the rest (default on)");
  sub->add_option("--optim", options->optimizer, "adamw | paged_adamw_32bit | paged_adamw_8bit")
      ->capture_default_str();
  sub->add_option("--quant-type", options->quant_type, "nf4 | fp4")->capture_default_str();
  sub->add_flag("--double-quant,!--no-double-quant", options->train.quant.double_quant,
                "Double Quantization of the constants (default on)");
  sub->add_option("--blocksize", options->train.quant.blocksize, "Weights per absmax block")->capture_default_str();
  sub->add_flag("--json", options->json, "Print JSON instead of a table");
  sub->callback([options] { run_memory(*options); });
}

}  // namespace nibble::cli
