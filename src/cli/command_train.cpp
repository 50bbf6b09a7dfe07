// nibble train: QLoRA fine-tuning of a model folder on a JSONL file, writing a PEFT adapter.
// Every option is a TrainConfig field (nibble/train/train_config.h), set by --config FILE and
// flags; the flags win. The loop itself, its progress line, metrics and checkpoints are
// nibble/train/trainer.h's.
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "nibble/train/train_options.h"
#include "nibble/train/trainer.h"

namespace nibble::cli {

void add_train_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("train", "fine-tune a LoRA adapter on a JSONL file (QLoRA on a 4-bit base)");
  auto command_line = std::make_shared<TrainCommandLine>(*sub);
  sub->callback([command_line] {
    const TrainConfig config = command_line->resolve();
    const TrainSummary s = run_training(config);
    fmt::print(stderr, "trained {} steps on {} in {:.1f} s ({:.0f} tokens/s); last loss {:.4f}", s.steps, s.device,
               s.seconds, s.seconds > 0 ? static_cast<double>(s.tokens) / s.seconds : 0.0, s.last_loss);
    if (s.first_eval_loss && s.last_eval_loss)
      fmt::print(stderr, "; eval loss {:.4f} -> {:.4f}", *s.first_eval_loss, *s.last_eval_loss);
    fmt::print(stderr, "\n");
    if (s.skipped_steps > 0) fmt::print(stderr, "{} steps skipped for NaN/Inf (on_nonfinite = skip)\n", s.skipped_steps);
    if (s.peak_gpu_bytes > 0)
      fmt::print(stderr, "peak GPU memory {:.2f} GiB measured; nibble memory predicted {:.2f} GiB\n",
                 s.peak_gpu_bytes / 1073741824.0, s.predicted_gpu_bytes / 1073741824.0);
    fmt::print(stderr, "adapter written to {} (adapter_config.json, adapter_model.safetensors)\n", config.out);
  });
}

}  // namespace nibble::cli
