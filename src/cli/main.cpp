// nibble: QLoRA fine-tuning of LLaMA-family models on one GPU.
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.h"
#include "nibble/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"nibble: QLoRA fine-tuning of LLaMA-family models on one GPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nibble 0.1.0");
  nibble::cli::add_memory_command(app);
  nibble::cli::add_quantize_command(app);
  nibble::cli::add_train_command(app);
  nibble::cli::add_generate_command(app);
  nibble::cli::add_eval_command(app);
  nibble::cli::add_merge_command(app);
  nibble::cli::add_import_gguf_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const nibble::Error& e) {
    fmt::print(stderr, "nibble: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "nibble: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
