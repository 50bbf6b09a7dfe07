#include "nibble/train/train_options.h"

#include <type_traits>

#include "nibble/core/error.h"

namespace nibble {

TrainCommandLine::TrainCommandLine(CLI::App& app) {
  app.add_option("--config", config_path_,
                 "JSON file of training options (keys as the flags, with underscores); flags override it");
  visit_train_options([&](const TrainOptionInfo& info, auto member) {
    using T = std::decay_t<decltype(flags_.*member)>;
    const std::string flag = train_flag_name(info.name);
    const std::string help = fmt::format("{} [{}]", info.help, info.name);
    CLI::Option* option = nullptr;
    if constexpr (std::is_same_v<T, bool>) {
      // --resume has no sensible --no-resume; every other switch can be turned off.
      const std::string names = info.name == std::string("resume") ? flag : flag + ",!--no-" + flag.substr(2);
      option = app.add_flag(names, flags_.*member, help);
    } else if constexpr (std::is_same_v<T, LoraModuleSelector>) {
      option = app.add_option(flag, target_modules_, help + " (default: all-linear)")->delimiter(',');
    } else {
      option = app.add_option(flag, flags_.*member, help)->capture_default_str();
    }
    options_[info.name] = option;
  });
}

TrainConfig TrainCommandLine::resolve() const {
  TrainConfig config = config_path_.empty() ? TrainConfig{} : load_train_config(config_path_);
  visit_train_options([&](const TrainOptionInfo& info, auto member) {
    if (options_.at(info.name)->count() == 0) return;
    using T = std::decay_t<decltype(flags_.*member)>;
    if constexpr (std::is_same_v<T, LoraModuleSelector>) {
      LoraModuleSelector selector;
      if (target_modules_.size() == 1 && target_modules_[0] == "all-linear") {
        selector.kind = LoraModuleSelector::Kind::all_linear;
      } else {
        selector.kind = LoraModuleSelector::Kind::names;
        for (const std::string& name : target_modules_) {
          NIBBLE_CHECK(!name.empty() && name != "all-linear",
                       "--target-modules: expected all-linear alone, or module names such as q_proj,v_proj");
          selector.names.push_back(name);
        }
      }
      config.*member = selector;
    } else {
      config.*member = flags_.*member;
    }
  });
  validate_train_config(config);
  return config;
}

}  // namespace nibble
