// Model folders that commands write (quantize, merge): the output appears whole or not at all,
// and the files that describe the tokenizer travel with the weights.
#pragma once

#include <filesystem>
#include <string>

namespace nibble::cli {

// Throws unless `out` is absent or an empty folder (nothing of the user's is overwritten).
void check_output_folder_free(const std::filesystem::path& out);

// Everything is written into a sibling staging folder that commit() renames to the target; a
// folder never committed is removed when this goes away (an exception mid-way leaves nothing).
class StagingFolder {
 public:
  explicit StagingFolder(const std::filesystem::path& target);
  ~StagingFolder();
  StagingFolder(const StagingFolder&) = delete;
  StagingFolder& operator=(const StagingFolder&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  void commit();

 private:
  std::filesystem::path target_, staging_;
  bool committed_ = false;
};

// Copies the tokenizer, generation and chat-template files of a model folder that exist
// (tokenizer.json, tokenizer_config.json, special_tokens_map.json, tokenizer.model,
// generation_config.json, chat_template.jinja) from `from` into `to`.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace nibble::cli
