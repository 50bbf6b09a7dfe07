// The CUDA optimizer against the CPU reference: the same float32 operations in the same order
// (adamw_math.h, explicit round-to-nearest intrinsics, host scalars), so bit-exact. Also the
// gradient norm (double accumulation in another order: within an ulp of float32) and the refusal
// of managed allocations larger than free device memory.
#include <cmath>
#include <cstring>
#include <string>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "nibble/optim/grad_clip.h"
#include "nibble/optim/optimizer.h"
#include "nibble/optim/state_buffer.h"
#include "optim_test_util.h"

namespace nibble {
namespace {

TEST(OptimCuda, MatchesCpuBitExact) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  // 300000 elements: paged (>= 1e5) and 8-bit; 5000: device memory, 8-bit with a partial block;
  // 100 and 20000: 32-bit through the fused kernel (20000 spans several chunks).
  const Shape shapes[] = {{300000}, {5000}, {100}, {20000}};
  for (AdamwVariant variant : {AdamwVariant::adamw, AdamwVariant::paged_adamw_32bit, AdamwVariant::paged_adamw_8bit}) {
    SCOPED_TRACE(std::string(adamw_variant_name(variant)));
    std::vector<OptimParam> cpu, gpu;
    for (size_t k = 0; k < 4; ++k) {
      Tensor p = test::random_tensor(shapes[k], 10 + k);
      cpu.push_back({std::to_string(k), p, Tensor::zeros(shapes[k], DType::f32)});
      gpu.push_back({std::to_string(k), p.to(Device::cuda, MemoryCategory::lora),
                     Tensor::zeros(shapes[k], DType::f32, Device::cuda, MemoryCategory::gradients)});
    }
    const AdamwHyper hyper{0.9, 0.999, 1e-8, 0.01};
    AdamwOptimizer opt_cpu(variant, hyper, cpu);
    AdamwOptimizer opt_gpu(variant, hyper, gpu);
    for (int t = 0; t < 4; ++t) {
      for (size_t k = 0; k < 4; ++k) {
        Tensor g = test::random_tensor(shapes[k], 100 * t + k, t == 2 ? 1e-6f : 0.1f);
        std::memcpy(cpu[k].grad.data(), g.data(), g.nbytes());
        gpu[k].grad.copy_from(g);
      }
      opt_cpu.step(1e-3 * (t + 1));
      opt_gpu.step(1e-3 * (t + 1));
    }
    for (size_t k = 0; k < 4; ++k) {
      Tensor back = gpu[k].param.to(Device::cpu);
      EXPECT_EQ(std::memcmp(back.data(), cpu[k].param.data(), back.nbytes()), 0) << "param " << k;
    }
    auto sc = opt_cpu.state_tensors(), sg = opt_gpu.state_tensors();
    ASSERT_EQ(sc.size(), sg.size());
    for (size_t i = 0; i < sc.size(); ++i)
      EXPECT_EQ(std::memcmp(sc[i].second.data(), sg[i].second.data(), sc[i].second.nbytes()), 0) << sc[i].first;
  }
}

TEST(OptimCuda, GradNormAndClip) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  Tensor a = test::random_tensor({100000}, 1), b = test::random_tensor({77}, 2, 3.0f);
  Tensor ga = a.to(Device::cuda), gb = b.to(Device::cuda);
  const float cpu_norm = grad_norm({a, b});
  const float gpu_norm = grad_norm({ga, gb});
  // Both sum in double (different order, ~1e-16 relative) and round once to float32: at most
  // one float32 ulp apart.
  EXPECT_LE(std::fabs(cpu_norm - gpu_norm), test::kEps32 * cpu_norm);
  clip_grad_norm({a, b}, 1.0f);
  clip_grad_norm({ga, gb}, 1.0f);
  if (cpu_norm == gpu_norm) {  // same coef, so the products must be identical
    Tensor back = ga.to(Device::cpu);
    EXPECT_EQ(std::memcmp(back.data(), a.data(), a.nbytes()), 0);
  }
  zero_grads({ga});
  Tensor zero = ga.to(Device::cpu);
  for (int64_t i = 0; i < zero.numel(); ++i) ASSERT_EQ(zero.data_as<float>()[i], 0.0f);
}

TEST(OptimCuda, ManagedAllocationRefusesMoreThanFree) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  // Twice what is free: refused before cudaMallocManaged is called, with both sizes named.
  try {
    StateBuffer buffer(2 * free_bytes, StatePlacement::managed);
    FAIL() << "a managed allocation larger than free memory must be refused";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(2 * free_bytes)), std::string::npos) << e.what();
  }
  // A small one works, starts zeroed, and can be prefetched.
  StateBuffer small(1 << 20, StatePlacement::managed);
  small.prefetch_to_device();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const unsigned char* bytes = static_cast<const unsigned char*>(small.data());
  for (size_t i = 0; i < small.bytes(); i += 4093) ASSERT_EQ(bytes[i], 0);
}

TEST(OptimCuda, CheckManagedFits) {
  EXPECT_NO_THROW(check_managed_fits(100, 100));
  EXPECT_THROW(check_managed_fits(101, 100), OutOfMemoryError);
}

}  // namespace
}  // namespace nibble
