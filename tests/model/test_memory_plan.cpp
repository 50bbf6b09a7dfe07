#include <gtest/gtest.h>

#include "nibble/model/activation_table.h"
#include "nibble/model/memory_plan.h"
#include "nibble/quant/sizes.h"

using namespace nibble;

namespace {
const MemoryPart& part(const MemoryPlan& plan, const std::string& prefix) {
  for (const MemoryPart& p : plan.parts)
    if (p.name.rfind(prefix, 0) == 0) return p;
  throw std::runtime_error("no part " + prefix);
}
}  // namespace

TEST(MemoryPlan, DoubleQuantizationSavesWhatThePaperSays) {
  MemoryPlan plan = plan_memory(*model_preset("llama-65b"), TrainShape{});
  EXPECT_DOUBLE_EQ(plan.bits_per_param_without_dq, 0.5);
  EXPECT_DOUBLE_EQ(plan.bits_per_param_with_dq, 8.0 / 64 + 32.0 / (64 * 256));
  // Per tensor the saving is 3 bytes per block minus the nested absmax and the tables that DQ adds.
  int64_t expected = 0;
  for (const LinearShape& l : block_linears(plan.model)) {
    int64_t blocks = quant_blocks(l.numel(), 64);
    expected += (3 * blocks - 4 * quant_blocks(blocks, 256) - 4 - 256 * 4) * plan.model.layers;
  }
  EXPECT_EQ(plan.constants_without_dq - plan.constants_with_dq, expected);
  EXPECT_NEAR((plan.constants_without_dq - plan.constants_with_dq) / 1e9, 3.02, 0.01);
  EXPECT_EQ(plan.packed_weight_bytes, plan.quantized_params / 2);
}

TEST(MemoryPlan, ConstantsCountedOnceOnTheGpu) {
  TrainShape train;
  MemoryPlan dq = plan_memory(*model_preset("llama-7b"), train);
  train.quant.double_quant = false;
  MemoryPlan plain = plan_memory(*model_preset("llama-7b"), train);
  EXPECT_EQ(plain.gpu_total - dq.gpu_total, plain.constants_without_dq - plain.constants_with_dq);
  EXPECT_TRUE(part(dq, "constants with DQ").on_gpu);
  EXPECT_FALSE(part(dq, "constants without DQ").on_gpu);
}

TEST(MemoryPlan, CheckpointingKeepsOnlyBlockInputs) {
  TrainShape train;
  ModelShape model = *model_preset("llama-7b");
  int64_t with = part(plan_memory(model, train), "activations").bytes;
  train.gradient_checkpointing = false;
  int64_t without = part(plan_memory(model, train), "activations").bytes;
  EXPECT_GT(without, 5 * with);
  // Checkpointed: one bf16 [T, C] input per block, one block's full set, the final norm.
  ActivationDims dims{4096, 11008, 32, 32, 128, 64, 7};
  int64_t tokens = 2048;
  EXPECT_EQ(with, 32 * tokens * 4096 * 2 + block_activation_bytes_per_token(dims, 2) * tokens + tokens * (4096 * 2 + 4));
}

TEST(MemoryPlan, OptimizerStates) {
  TrainShape train;
  ModelShape model = *model_preset("llama-7b");
  train.optimizer = AdamwVariant::adamw;
  MemoryPlan adam = plan_memory(model, train);
  EXPECT_EQ(part(adam, "optimizer").bytes, adam.lora_params * 8);
  EXPECT_TRUE(part(adam, "optimizer").on_gpu);
  train.optimizer = AdamwVariant::paged_adamw_8bit;
  MemoryPlan eight = plan_memory(model, train);
  EXPECT_FALSE(part(eight, "optimizer").on_gpu);
  EXPECT_LT(part(eight, "optimizer").bytes, adam.lora_params * 2 + adam.lora_params / 16);
  EXPECT_EQ(eight.paged_total, part(eight, "optimizer").bytes);
  EXPECT_THROW(parse_adamw_variant("sgd"), Error);
}

TEST(MemoryPlan, LoraParameterCount) {
  MemoryPlan plan = plan_memory(*model_preset("llama-7b"), TrainShape{});
  // r (in + out) per linear: q,k,v,o 64 (4096+4096); gate, up 64 (4096+11008); down the same.
  int64_t per_block = 4 * 64 * 8192 + 3 * 64 * (4096 + 11008);
  EXPECT_EQ(plan.lora_params, per_block * 32);
}
