#define PCRE2_CODE_UNIT_WIDTH 8
#include "nibble/lora/lora_targets.h"

#include <cmath>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <pcre2.h>

#include "nibble/core/error.h"

namespace nibble {

namespace {

// A Python `re` pattern compiled with PCRE2, whose syntax covers what module patterns use
// (groups, alternation, classes, (?P<name>...)).
class PythonRegex {
 public:
  PythonRegex(const std::string& pattern, const std::string& where) {
    int error_code = 0;
    PCRE2_SIZE offset = 0;
    code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF,
                              &error_code, &offset, nullptr));
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      fail("{}: bad regex \"{}\" at offset {}: {}", where, pattern, offset, reinterpret_cast<const char*>(message));
    }
    data_.reset(pcre2_match_data_create_from_pattern(code_.get(), nullptr));
  }
  // re.fullmatch
  bool full_match(const std::string& s) const { return run(s, PCRE2_ANCHORED | PCRE2_ENDANCHORED); }
  // re.match: anchored at the start only
  bool prefix_match(const std::string& s) const { return run(s, PCRE2_ANCHORED); }

 private:
  bool run(const std::string& s, uint32_t options) const {
    return pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, options, data_.get(),
                       nullptr) >= 0;
  }
  struct CodeFree {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  struct DataFree {
    void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
  };
  std::unique_ptr<pcre2_code, CodeFree> code_;
  std::unique_ptr<pcre2_match_data, DataFree> data_;
};

bool ends_with_component(const std::string& key, const std::string& name) {
  return key == name || (key.size() > name.size() && key.compare(key.size() - name.size(), name.size(), name) == 0 &&
                         key[key.size() - name.size() - 1] == '.');
}

// A selector of names or a regex; all-linear is handled by the caller.
struct Selector {
  const LoraModuleSelector& s;
  std::optional<PythonRegex> regex;
  Selector(const LoraModuleSelector& selector, const std::string& where) : s(selector) {
    if (s.kind == LoraModuleSelector::Kind::regex) regex.emplace(s.regex, where);
  }
  bool matches(const std::string& key) const {
    if (regex) return regex->full_match(key);
    for (const std::string& name : s.names) {
      if (ends_with_component(key, name)) return true;
    }
    return false;
  }
};

// PEFT's get_pattern_key: the first key k (file order) with re.match(rf"(.*\.)?({k})$", module).
template <typename V>
std::optional<V> pattern_value(const std::vector<std::pair<std::string, V>>& patterns, const std::string& module,
                               const std::string& where) {
  for (const auto& [key, value] : patterns) {
    if (PythonRegex("(.*\\.)?(" + key + ")$", where).prefix_match(module)) return value;
  }
  return std::nullopt;
}

}  // namespace

double lora_scaling(double alpha, int64_t r, bool use_rslora) {
  NIBBLE_CHECK(r > 0, "LoRA rank r = {}; expected a positive integer", r);
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

std::vector<LoraTarget> lora_resolve_targets(const LoraConfig& config, const ModelShape& shape,
                                             const std::string& where) {
  const bool all_linear = config.target_modules.kind == LoraModuleSelector::Kind::all_linear;
  std::optional<Selector> targets;
  if (!all_linear) targets.emplace(config.target_modules, where + " target_modules");
  std::optional<Selector> excluded;
  if (config.exclude_modules) excluded.emplace(*config.exclude_modules, where + " exclude_modules");

  // The modules nibble cannot adapt: selecting one is an error, not a silent skip.
  if (targets) {
    for (const char* other : {"lm_head", "model.embed_tokens"}) {
      if (targets->matches(other) && !(excluded && excluded->matches(other)))
        fail("{}: target_modules selects {}; LoRA on it is not supported by nibble (only the seven block linears)",
             where, other);
    }
  }

  std::vector<LoraTarget> out;
  const std::vector<LinearShape> linears = block_linears(shape);
  for (int64_t layer = 0; layer < shape.layers; ++layer) {
    for (size_t i = 0; i < linears.size(); ++i) {
      const std::string module = fmt::format("model.layers.{}.{}", layer, linears[i].module_path);
      if (excluded && excluded->matches(module)) continue;
      bool selected = all_linear || targets->matches(module);
      // layers_to_transform applies to a list of names only, as in PEFT; an exact full-name entry
      // is taken as it is.
      if (selected && config.layers_to_transform && config.target_modules.kind == LoraModuleSelector::Kind::names) {
        bool exact = false;
        for (const std::string& n : config.target_modules.names) exact = exact || n == module;
        bool in_layers = false;
        for (int64_t l : *config.layers_to_transform) in_layers = in_layers || l == layer;
        selected = exact || in_layers;
      }
      if (!selected) continue;
      LoraTarget t;
      t.module = module;
      t.layer = layer;
      t.linear = static_cast<int64_t>(i);
      t.name = std::string(linears[i].name);
      t.out = linears[i].out;
      t.in = linears[i].in;
      t.r = pattern_value(config.rank_pattern, module, where + " rank_pattern").value_or(config.r);
      t.alpha = pattern_value(config.alpha_pattern, module, where + " alpha_pattern").value_or(config.lora_alpha);
      NIBBLE_CHECK(t.r > 0, "{}: rank {} for {}; expected a positive integer", where, t.r, module);
      out.push_back(std::move(t));
    }
  }
  NIBBLE_CHECK(!out.empty(), "{}: target_modules selects none of the {} block linears of {}; expected names such "
               "as q_proj ... down_proj, a regex over \"model.layers.N.self_attn.q_proj\", or all-linear",
               where, linears.size() * shape.layers, shape.name.empty() ? "the model" : shape.name);
  return out;
}

}  // namespace nibble
