// CUDA multi-tensor AdamW against kernels::AdamWStep<float> on the CPU, tensor by tensor, over
// three steps with per-tensor step counts and a skip mask (skipped tensors must stay bit for bit),
// with f32, bf16 and f16 gradients; 40 tensors so two launches of 32 are exercised. Skips without a
// GPU.
#include <memory>

#include "kernels/adamw.h"
#include "kernels/cuda/adamw.cuh"
#include "tests/kernels/cuda/cuda_parity.h"

namespace moetrain {
namespace {

using testing::DeviceBuffer;

void RunParity(DType grad_dtype) {
  MT_SKIP_WITHOUT_GPU("adamw", grad_dtype);
  kernels::AdamWHyper hyper;
  hyper.lr = 1e-2;
  hyper.weight_decay = 0.1;
  const float grad_scale = 0.5f;
  const int num_tensors = 40;
  struct Host {
    std::vector<float> p, m, v;
    int64_t step;
  };
  std::vector<Host> cpu(num_tensors);
  std::vector<std::unique_ptr<DeviceBuffer>> dp, dm, dv, dg;
  for (int k = 0; k < num_tensors; ++k) {
    const int64_t n = k == 0 ? 70001 : 1 + 97 * k;  // one tensor larger than many blocks
    cpu[k] = {testing::RandomVector<float>(n, 10 + k), std::vector<float>(n, 0.f),
              std::vector<float>(n, 0.f), static_cast<int64_t>(k % 3)};  // steps so far: 0, 1, 2
    // Moments from "earlier steps" so the bias corrections matter.
    if (cpu[k].step > 0) {
      cpu[k].m = testing::RandomVector<float>(n, 100 + k, 0.1);
      cpu[k].v = testing::RandomVector<float>(n, 200 + k, 0.01);
      for (float& x : cpu[k].v) x = x * x;
    }
    dp.push_back(std::make_unique<DeviceBuffer>(cpu[k].p));
    dm.push_back(std::make_unique<DeviceBuffer>(cpu[k].m));
    dv.push_back(std::make_unique<DeviceBuffer>(cpu[k].v));
    dg.push_back(std::make_unique<DeviceBuffer>(cpu[k].p.size() * DTypeSize(grad_dtype)));
  }
  const std::vector<Host> initial = cpu;
  std::vector<bool> ever_stepped(num_tensors, false);
  for (int it = 0; it < 3; ++it) {
    std::vector<cuda::AdamWTensor> tensors(num_tensors);
    for (int k = 0; k < num_tensors; ++k) {
      const bool skip = (k + it) % 4 == 0 || k == 5;  // tensor 5 never receives tokens
      const std::vector<float> g =
          testing::RoundedRandom(static_cast<int64_t>(cpu[k].p.size()), 1000 * it + k, grad_dtype);
      dg[k]->Upload(testing::ToStorage(g, grad_dtype));
      tensors[k] = {dp[k]->get<float>(),
                    dm[k]->get<float>(),
                    dv[k]->get<float>(),
                    dg[k]->get(),
                    static_cast<int64_t>(g.size()),
                    cpu[k].step + 1,
                    skip};
      if (skip) continue;
      ++cpu[k].step;
      ever_stepped[k] = true;
      kernels::AdamWStep(cpu[k].p.data(), cpu[k].m.data(), cpu[k].v.data(), g.data(),
                         static_cast<int64_t>(g.size()), hyper, cpu[k].step, grad_scale);
    }
    ASSERT_TRUE(cuda::AdamWMultiStep(tensors, grad_dtype, hyper, grad_scale, nullptr).ok());
  }
  // fp32 math against double rounded to float: a few ulps of each state value; the update adds
  // lr times a few ulps of an O(1) quotient. m = b1 m + (1-b1) g can cancel to ~0, so it gets an
  // absolute slack of a few ulps of its O(1) terms.
  const double rtol = 16 * 0x1p-24, atol_p = hyper.lr * 16 * 0x1p-24;
  std::vector<float> all_gpu_p, all_cpu_p, all_gpu_m, all_cpu_m, all_gpu_v, all_cpu_v;
  for (int k = 0; k < num_tensors; ++k) {
    const std::vector<float> p = dp[k]->Download<float>(), m = dm[k]->Download<float>(),
                             v = dv[k]->Download<float>();
    if (!ever_stepped[k]) {  // bit for bit untouched
      EXPECT_EQ(p, initial[k].p) << "skipped tensor " << k;
      EXPECT_EQ(m, initial[k].m) << "skipped tensor " << k;
      EXPECT_EQ(v, initial[k].v) << "skipped tensor " << k;
      continue;
    }
    all_gpu_p.insert(all_gpu_p.end(), p.begin(), p.end());
    all_cpu_p.insert(all_cpu_p.end(), cpu[k].p.begin(), cpu[k].p.end());
    all_gpu_m.insert(all_gpu_m.end(), m.begin(), m.end());
    all_cpu_m.insert(all_cpu_m.end(), cpu[k].m.begin(), cpu[k].m.end());
    all_gpu_v.insert(all_gpu_v.end(), v.begin(), v.end());
    all_cpu_v.insert(all_cpu_v.end(), cpu[k].v.begin(), cpu[k].v.end());
  }
  EXPECT_FALSE(ever_stepped[5]);
  EXPECT_TRUE(testing::ExpectParity("adamw.param", grad_dtype, all_gpu_p, all_cpu_p, rtol, atol_p));
  EXPECT_TRUE(testing::ExpectParity("adamw.m", grad_dtype, all_gpu_m, all_cpu_m, rtol, rtol));
  EXPECT_TRUE(testing::ExpectParity("adamw.v", grad_dtype, all_gpu_v, all_cpu_v, rtol, 1e-15));
}

TEST(AdamWCudaTest, F32GradsMatchCpu) { RunParity(DType::kF32); }
TEST(AdamWCudaTest, Bf16GradsMatchCpu) { RunParity(DType::kBF16); }
TEST(AdamWCudaTest, F16GradsMatchCpu) { RunParity(DType::kF16); }

TEST(AdamWCudaTest, BadTensorIsInvalidArgumentNamingIt) {
  float dummy = 0;
  std::vector<cuda::AdamWTensor> tensors(2);
  tensors[0] = {&dummy, &dummy, &dummy, &dummy, 1, 1, false};
  tensors[1] = {&dummy, &dummy, &dummy, &dummy, 1, 0, false};  // step 0
  const absl::Status st = cuda::AdamWMultiStep(tensors, DType::kF32, {}, 1.f, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("tensor 1"), std::string::npos) << st;
}

}  // namespace
}  // namespace moetrain
