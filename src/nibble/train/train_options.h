// The command-line side of TrainConfig: one flag per field, and --config FILE.
//
// Flags are spelled as the other nibble commands spell theirs, with dashes: the field
// learning_rate is --learning-rate (the config-file key keeps the underscore, as transformers
// writes it). Booleans take --name / --no-name. target_modules takes all-linear or a list of
// module names (--target-modules q_proj,v_proj); a regex is for the config file only.
//
// Flags override the file: the flags are parsed into their own TrainConfig; resolve() loads the
// file (when --config is given) into a fresh one and then copies over only the fields whose flag
// was given (CLI11's count()), so a flag that equals its default still wins over the file.
//
// Lives in the train module rather than src/cli so the override rules are tested without the
// executable; CLI11 is a header library.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "nibble/train/train_config.h"

namespace nibble {

class TrainCommandLine {
 public:
  // Adds --config and a flag per TrainConfig field to `app` (the `train` subcommand). The
  // object is bound to the options by reference: keep it alive and in place until parsed.
  explicit TrainCommandLine(CLI::App& app);
  TrainCommandLine(const TrainCommandLine&) = delete;
  TrainCommandLine& operator=(const TrainCommandLine&) = delete;

  // After parsing: defaults <- config file <- given flags, validated (validate_train_config).
  TrainConfig resolve() const;
  const std::string& config_path() const { return config_path_; }

 private:
  TrainConfig flags_;
  std::vector<std::string> target_modules_;  // the flag's values, turned into a selector by resolve()
  std::string config_path_;
  std::map<std::string, CLI::Option*> options_;  // field name -> its flag
};

}  // namespace nibble
