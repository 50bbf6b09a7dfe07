// One function per subcommand: it adds the subcommand and its options to the app and sets the
// callback that runs it. Each lives in its own file (command_<name>.cpp).
#pragma once

#include <CLI/CLI.hpp>

namespace nibble::cli {

void add_memory_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_merge_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_import_gguf_command(CLI::App& app);

}  // namespace nibble::cli
