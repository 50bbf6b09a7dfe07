// Adapters to and from PEFT folders: our round trip, and adapters made by real PEFT
// (tests/golden/lora/, tests/golden/make_lora_golden.py) merged as PEFT's merge_and_unload does.
#include <cfloat>
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "lora_test_util.h"
#include "nibble/core/half.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/safetensors.h"
#include "nibble/lora/lora_merge.h"
#include "nibble/lora/lora_peft.h"
#include "tests/support/tiny_model.h"

using namespace nibble;
using nibble::test::error_of;
using nibble::test::small_shape;
using nibble::testing::TempDir;

namespace {

const std::string kGolden = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden/lora";

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

LoraAdapter sample_adapter() {
  LoraConfig c;
  c.r = 4;
  c.lora_alpha = 8;
  c.lora_dropout = 0.05;
  c.init_lora_weights = LoraInit::none;
  c.rank_pattern = {{"o_proj", 2}};
  c.base_model_name_or_path = "tiny";
  return lora_init(c, small_shape(), 17);
}

// Rewrites DIR/adapter_model.safetensors with `edit` applied to its tensor list.
template <typename F>
void edit_tensors(const std::string& dir, F&& edit) {
  const std::string path = dir + "/adapter_model.safetensors";
  std::vector<std::pair<std::string, Tensor>> tensors;
  {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const std::string& name : file.names()) tensors.emplace_back(name, file.tensor(name).to(Device::cpu));
  }
  edit(tensors);
  save_safetensors(path, tensors);
}

}  // namespace

TEST(LoraPeft, RoundTripIsExact) {
  TempDir dir;
  const LoraAdapter saved = sample_adapter();
  lora_save_peft(dir / "adapter", saved);
  const LoraAdapter loaded = lora_load_peft(dir / "adapter", small_shape());
  ASSERT_EQ(loaded.linears.size(), saved.linears.size());
  for (size_t i = 0; i < saved.linears.size(); ++i) {
    const LoraLinear &s = saved.linears[i], &l = loaded.linears[i];
    EXPECT_EQ(l.target.module, s.target.module);
    EXPECT_EQ(l.target.r, s.target.name == "o_proj" ? 2 : 4);
    EXPECT_EQ(l.target.r, s.target.r);
    EXPECT_EQ(l.scaling, s.scaling);
    EXPECT_TRUE(same_bits(l.a, s.a)) << s.target.module;
    EXPECT_TRUE(same_bits(l.b, s.b)) << s.target.module;
  }
  EXPECT_EQ(loaded.config.lora_dropout, 0.05);
  EXPECT_EQ(loaded.config.rank_pattern, saved.config.rank_pattern);
  EXPECT_EQ(loaded.config.base_model_name_or_path, std::optional<std::string>("tiny"));
  const SafetensorsFile file = SafetensorsFile::open(dir / "adapter/adapter_model.safetensors");
  EXPECT_EQ(file.dtype_name("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"), "F32");
  EXPECT_EQ(file.shape("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"), Shape({4, 96}));
}

TEST(LoraPeft, SixteenBitTensorsAreAccepted) {
  TempDir dir;
  lora_save_peft(dir / "a", sample_adapter());
  edit_tensors(dir / "a", [](std::vector<std::pair<std::string, Tensor>>& tensors) {
    for (auto& [name, t] : tensors) {
      Tensor h = Tensor::empty(t.shape(), DType::bf16);
      for (int64_t i = 0; i < t.numel(); ++i) h.data_as<bf16_t>()[i] = float_to_bf16(t.data_as<float>()[i]);
      t = h;
    }
  });
  const LoraAdapter loaded = lora_load_peft(dir / "a", small_shape());
  const LoraAdapter saved = sample_adapter();
  const float* got = loaded.linears[3].a.data_as<float>();
  const float* want = saved.linears[3].a.data_as<float>();
  for (int64_t i = 0; i < loaded.linears[3].a.numel(); ++i) ASSERT_EQ(got[i], bf16_to_float(float_to_bf16(want[i])));
}

TEST(LoraPeft, MissingMisshapenAndStrayTensorsAreNamed) {
  TempDir dir;
  lora_save_peft(dir / "a", sample_adapter());
  const std::string name = "base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight";
  const std::string file = dir / "a/adapter_model.safetensors";

  edit_tensors(dir / "a", [&](std::vector<std::pair<std::string, Tensor>>& tensors) {
    for (auto& [n, t] : tensors) {
      if (n == name) t = Tensor::zeros({4, 32}, DType::f32);
    }
  });
  std::string message = error_of([&] { lora_load_peft(dir / "a", small_shape()); });
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find("expected [4, 64]"), std::string::npos) << message;

  edit_tensors(dir / "a", [&](std::vector<std::pair<std::string, Tensor>>& tensors) {
    for (auto& [n, t] : tensors) {
      if (n == name) n = "base_model.model.model.layers.7.self_attn.k_proj.lora_A.weight";
    }
  });
  message = error_of([&] { lora_load_peft(dir / "a", small_shape()); });
  EXPECT_NE(message.find("missing tensor " + name), std::string::npos) << message;
  EXPECT_NE(message.find("[4, 64]"), std::string::npos) << message;

  edit_tensors(dir / "a", [&](std::vector<std::pair<std::string, Tensor>>& tensors) {
    for (auto& [n, t] : tensors) {
      if (n.find("layers.7") != std::string::npos) {
        n = name;
        t = Tensor::zeros({4, 64}, DType::f32);
      }
    }
    tensors.emplace_back("base_model.model.lm_head.weight", Tensor::zeros({64, 64}, DType::f32));
  });
  message = error_of([&] { lora_load_peft(dir / "a", small_shape()); });
  EXPECT_NE(message.find("unexpected tensor base_model.model.lm_head.weight"), std::string::npos) << message;
}

// PEFT's own adapters, merged by us, against merge_and_unload(). Both sides compute fp32
// W + scaling * (B @ A); only the order of the R-term sum and the roundings differ, so the bound
// is FLT_EPSILON * (R * scaling * sum|B A| + |W'|) (see test_lora_merge.cpp), a few ulps times R.
TEST(LoraPeft, MergesPeftAdaptersAsPeftDoes) {
  const ModelShape shape = model_shape_from_config(load_model_config(kGolden + "/model"), "golden");
  const SafetensorsFile base = SafetensorsFile::open(kGolden + "/model/model.safetensors");
  const SafetensorsFile merged = SafetensorsFile::open(kGolden + "/merged.safetensors");
  for (const std::string folder : {"adapter", "adapter_rank_pattern"}) {
    SCOPED_TRACE(folder);
    const LoraAdapter adapter = lora_load_peft(kGolden + "/" + folder, shape);
    ASSERT_EQ(adapter.linears.size(), 14u);
    const bool patterned = folder == "adapter_rank_pattern";
    int64_t compared = 0;
    for (const LoraLinear& l : adapter.linears) {
      // PEFT's scaling: alpha/r, or alpha/sqrt(r) with rsLoRA, after rank/alpha patterns.
      if (patterned) {
        EXPECT_EQ(l.target.r, l.target.name == "k_proj" ? 2 : 4);
        EXPECT_EQ(l.target.alpha, l.target.name == "down_proj" ? 4.0 : 8.0);
        EXPECT_EQ(l.scaling, l.target.alpha / std::sqrt(double(l.target.r)));
      } else {
        EXPECT_EQ(l.scaling, 2.0);
      }
      if (l.target.layer != 1) continue;
      const std::string weight = l.target.module + ".weight";
      const Tensor w = base.tensor(weight);
      const Tensor want = merged.tensor((patterned ? "rank_pattern." : "") + weight);
      const Tensor got = lora_merge(w, l, DType::f32);
      const int64_t K = l.target.in, R = l.target.r;
      int64_t changed = 0;
      for (int64_t i = 0; i < got.numel(); ++i) {
        const int64_t n = i / K, k = i % K;
        double magnitude = 0;
        for (int64_t r = 0; r < R; ++r)
          magnitude += std::fabs(double(l.b.data_as<float>()[n * R + r]) * l.a.data_as<float>()[r * K + k]);
        const float p = want.data_as<float>()[i], g = got.data_as<float>()[i];
        const double bound = FLT_EPSILON * (R * l.scaling * magnitude + std::fabs(p));
        ASSERT_LE(std::fabs(double(g) - p), bound) << weight << " element " << i;
        changed += p != w.data_as<float>()[i];
      }
      EXPECT_GT(changed, got.numel() / 2) << weight;  // PEFT's merge did change the weight
      ++compared;
    }
    EXPECT_EQ(compared, 7);
  }
}
