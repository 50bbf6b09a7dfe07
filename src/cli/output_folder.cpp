#include "cli/output_folder.h"

#include <unistd.h>

#include <fmt/format.h>

#include "nibble/core/error.h"

namespace nibble::cli {

namespace fs = std::filesystem;

void check_output_folder_free(const fs::path& out) {
  NIBBLE_CHECK(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out)),
               "output folder {} already exists and is not empty: choose another --out or remove it", out.string());
}

StagingFolder::StagingFolder(const fs::path& target) : target_(target) {
  staging_ = target;
  staging_ += fmt::format(".partial-{}", getpid());
  std::error_code ec;
  fs::remove_all(staging_, ec);
  fs::create_directories(staging_, ec);
  NIBBLE_CHECK(!ec, "cannot create {}: {}", staging_.string(), ec.message());
}

StagingFolder::~StagingFolder() {
  std::error_code ec;
  if (!committed_) fs::remove_all(staging_, ec);
}

void StagingFolder::commit() {
  std::error_code ec;
  if (fs::exists(target_)) fs::remove(target_, ec);  // only an empty folder gets here
  fs::rename(staging_, target_, ec);
  NIBBLE_CHECK(!ec, "cannot rename {} to {}: {}", staging_.string(), target_.string(), ec.message());
  committed_ = true;
}

void copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  static const char* const kFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                       "tokenizer.model", "generation_config.json", "chat_template.jinja"};
  for (const char* file : kFiles) {
    const fs::path source = from / file;
    std::error_code ec;
    if (!fs::exists(source)) continue;
    fs::copy_file(source, to / file, ec);
    NIBBLE_CHECK(!ec, "cannot copy {} to {}: {}", source.string(), (to / file).string(), ec.message());
  }
}

}  // namespace nibble::cli
