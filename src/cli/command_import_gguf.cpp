// nibble import-gguf: a GGUF model file (llama.cpp's format) in, a Hugging Face folder out
// (config.json, bf16 model.safetensors, tokenizer.json, tokenizer_config.json), which every
// other command and transformers load as they are. docs/gguf.md lists what is supported.
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/output_folder.h"
#include "cli/progress.h"
#include "nibble/io/gguf.h"
#include "nibble/io/gguf_to_hf.h"

namespace nibble::cli {

namespace fs = std::filesystem;

namespace {

struct ImportGgufOptions {
  std::string gguf_path;
  std::string out_dir;
};

void run_import_gguf(const ImportGgufOptions& options) {
  const fs::path out(options.out_dir);
  check_output_folder_free(out);
  GgufFile file = GgufFile::open(options.gguf_path);

  StagingFolder staging(out);
  std::unique_ptr<ProgressBar> progress;
  GgufImportSummary summary = import_gguf(file, staging.path().string(),
                                          [&](int64_t done, int64_t total, const std::string& tensor) {
                                            if (!progress) progress = std::make_unique<ProgressBar>("importing", total);
                                            progress->update(done, tensor);
                                          });
  staging.commit();
  if (progress) progress->finish();

  std::string types;
  for (const auto& [type, count] : summary.source_types)
    types += fmt::format("{}{} {}", types.empty() ? "" : ", ", count, type);
  fmt::print("imported {}{} from {} (GGUF v{}): {} tensors ({}), {} parameters{}, as bf16\n", summary.architecture,
             summary.name.empty() ? "" : fmt::format(" \"{}\"", summary.name), options.gguf_path, file.version(),
             summary.tensors, types, format_count(summary.parameters),
             summary.tied_embeddings ? " (lm_head tied to the embeddings)" : "");
  fmt::print("wrote {}\n", out.string());
}

}  // namespace

void add_import_gguf_command(CLI::App& app) {
  auto options = std::make_shared<ImportGgufOptions>();
  CLI::App* sub = app.add_subcommand("import-gguf", "Convert a GGUF model file to a Hugging Face folder (bf16)");
  sub->add_option("file", options->gguf_path, "GGUF file (llama architecture)")->required();
  sub->add_option("--out", options->out_dir, "Output folder (must not exist, or be empty)")->required();
  sub->callback([options] { run_import_gguf(*options); });
}

}  // namespace nibble::cli
