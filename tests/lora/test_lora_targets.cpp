#include <cmath>

#include <gtest/gtest.h>

#include "lora_test_util.h"
#include "nibble/lora/lora_targets.h"

using namespace nibble;
using nibble::test::error_of;
using nibble::test::small_shape;

namespace {

LoraConfig with_names(std::vector<std::string> names) {
  LoraConfig c;
  c.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, std::move(names), {}};
  return c;
}

std::vector<std::string> modules(const std::vector<LoraTarget>& targets) {
  std::vector<std::string> out;
  for (const LoraTarget& t : targets) out.push_back(t.module);
  return out;
}

}  // namespace

TEST(LoraTargets, AllLinearIsEverySevenPerLayer) {
  const std::vector<LoraTarget> t = lora_resolve_targets(LoraConfig{}, small_shape());
  ASSERT_EQ(t.size(), 14u);
  EXPECT_EQ(t[0].module, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(t[6].module, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(t[13].module, "model.layers.1.mlp.down_proj");
  // [out, in] from the model: k_proj 2 kv heads x 16, down_proj in = intermediate.
  EXPECT_EQ(t[1].out, 32);
  EXPECT_EQ(t[1].in, 64);
  EXPECT_EQ(t[6].out, 64);
  EXPECT_EQ(t[6].in, 96);
  EXPECT_EQ(t[6].r, 8);
}

TEST(LoraTargets, NamesRegexExcludeAndLayers) {
  EXPECT_EQ(modules(lora_resolve_targets(with_names({"q_proj", "mlp.up_proj"}), small_shape())),
            (std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj",
                                      "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj"}));
  // A name must match whole components: "proj" is not a suffix component of "q_proj".
  EXPECT_NE(error_of([] { lora_resolve_targets(with_names({"proj"}), small_shape()); }).find("selects none"),
            std::string::npos);
  LoraConfig regex;
  regex.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::regex, {}, R"(.*\.1\.self_attn\.(q|v)_proj)"};
  EXPECT_EQ(modules(lora_resolve_targets(regex, small_shape())),
            (std::vector<std::string>{"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}));
  // fullmatch: a regex matching only part of the name selects nothing.
  regex.target_modules.regex = "q_proj";
  EXPECT_NE(error_of([&] { lora_resolve_targets(regex, small_shape()); }).find("selects none"), std::string::npos);

  LoraConfig excluded;
  excluded.exclude_modules = LoraModuleSelector{LoraModuleSelector::Kind::names, {"mlp.gate_proj", "mlp.up_proj",
                                                "mlp.down_proj", "o_proj", "k_proj"}, {}};
  EXPECT_EQ(lora_resolve_targets(excluded, small_shape()).size(), 4u);

  LoraConfig layers = with_names({"v_proj"});
  layers.layers_to_transform = std::vector<int64_t>{1};
  EXPECT_EQ(modules(lora_resolve_targets(layers, small_shape())),
            (std::vector<std::string>{"model.layers.1.self_attn.v_proj"}));
}

TEST(LoraTargets, RankAndAlphaPatterns) {
  LoraConfig c;
  c.r = 4;
  c.lora_alpha = 8;
  // First matching key wins, matched against the end of the name at a component boundary.
  c.rank_pattern = {{"model.layers.1.self_attn.k_proj", 3}, {"k_proj", 2}};
  c.alpha_pattern = {{"mlp\\..*", 5}};
  for (const LoraTarget& t : lora_resolve_targets(c, small_shape())) {
    const int64_t want_r = t.name == "k_proj" ? (t.layer == 1 ? 3 : 2) : 4;
    EXPECT_EQ(t.r, want_r) << t.module;
    EXPECT_EQ(t.alpha, t.module.find(".mlp.") != std::string::npos ? 5.0 : 8.0) << t.module;
  }
}

TEST(LoraTargets, UnsupportedAndBadSelections) {
  const std::string lm_head = error_of([] { lora_resolve_targets(with_names({"q_proj", "lm_head"}), small_shape()); });
  EXPECT_NE(lm_head.find("lm_head"), std::string::npos) << lm_head;
  EXPECT_NE(lm_head.find("not supported"), std::string::npos) << lm_head;
  LoraConfig bad;
  bad.target_modules = LoraModuleSelector{LoraModuleSelector::Kind::regex, {}, "(unclosed"};
  EXPECT_NE(error_of([&] { lora_resolve_targets(bad, small_shape(), "x/adapter_config.json"); })
                .find("x/adapter_config.json target_modules: bad regex"),
            std::string::npos);
}

TEST(LoraTargets, Scaling) {
  EXPECT_EQ(lora_scaling(8, 4, false), 2.0);    // alpha / r (the golden adapter: 2.0)
  EXPECT_EQ(lora_scaling(8, 4, true), 4.0);     // alpha / sqrt(r)
  EXPECT_EQ(lora_scaling(16, 64, false), 0.25);
  EXPECT_EQ(lora_scaling(16, 64, true), 2.0);
  EXPECT_DOUBLE_EQ(lora_scaling(8, 2, true), 8 / std::sqrt(2.0));
  EXPECT_THROW(lora_scaling(8, 0, false), Error);
}
