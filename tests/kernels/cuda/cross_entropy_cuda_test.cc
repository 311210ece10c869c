// CUDA fused softmax cross-entropy forward + backward against kernels/cross_entropy.h on the CPU
// (fp32 on logits rounded to the storage dtype), with ignored rows, for f32, bf16 and f16 logits;
// and the documented NaN for an out-of-range target. Skips cleanly without a GPU.
#include <cmath>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/cross_entropy.cuh"
#include "tests/kernels/cuda/cuda_parity.h"

namespace moetrain {
namespace {

using testing::DeviceBuffer;
using testing::DownloadAsFloat;
using testing::ExpectParity;
using testing::ToStorage;

constexpr int32_t kIgnore = -100;

void RunParity(DType dtype) {
  MT_SKIP_WITHOUT_GPU("cross_entropy", dtype);
  const int64_t n = 19, v = 5003;  // V not a multiple of the block size
  const std::vector<float> logits = testing::RoundedRandom(n * v, 1, dtype, 3.0);
  std::vector<int32_t> targets = testing::RandomInts(n, 0, static_cast<int32_t>(v), 2);
  targets[3] = targets[11] = kIgnore;
  std::vector<float> losses(n), lse(n), dlogits(n * v);
  const int64_t valid = kernels::CrossEntropyForward(losses.data(), lse.data(), logits.data(),
                                                     targets.data(), n, v, kIgnore);
  const float dloss = 1.f / static_cast<float>(valid);
  kernels::CrossEntropyBackward(dlogits.data(), logits.data(), lse.data(), targets.data(), dloss, n,
                                v, kIgnore);

  DeviceBuffer d_logits(ToStorage(logits, dtype)), d_targets(targets), d_losses(n * sizeof(float)),
      d_lse(n * sizeof(float)), d_dlogits(n * v * DTypeSize(dtype));
  ASSERT_TRUE(cuda::CrossEntropyForward(d_losses.get<float>(), d_lse.get<float>(), d_logits.get(),
                                        d_targets.get<int32_t>(), n, v, kIgnore, dtype, nullptr)
                  .ok());
  ASSERT_TRUE(cuda::CrossEntropyBackward(d_dlogits.get(), d_logits.get(), d_lse.get<float>(),
                                         d_targets.get<int32_t>(), dloss, n, v, kIgnore, dtype,
                                         nullptr)
                  .ok());
  // lse: an fp32 sum of V exponentials (the CPU sums in double): relative error up to ~V 2^-24 of
  // the sum, i.e. that much absolute error in its log. dlogits: exp of a value off by that much,
  // then one rounding to storage.
  const double sum_err = static_cast<double>(v) * 0x1p-24, u = testing::UnitRoundoff(dtype);
  EXPECT_TRUE(
      ExpectParity("cross_entropy.lse", dtype, d_lse.Download<float>(), lse, 0x1p-20, sum_err));
  EXPECT_TRUE(ExpectParity("cross_entropy.loss", dtype, d_losses.Download<float>(), losses, 0x1p-20,
                           sum_err));
  EXPECT_TRUE(ExpectParity("cross_entropy.dlogits", dtype, DownloadAsFloat(d_dlogits, dtype),
                           dlogits, 4 * u + 2 * sum_err, dloss * 2 * sum_err));
}

TEST(CrossEntropyCudaTest, F32MatchesCpu) { RunParity(DType::kF32); }
TEST(CrossEntropyCudaTest, Bf16MatchesCpu) { RunParity(DType::kBF16); }
TEST(CrossEntropyCudaTest, F16MatchesCpu) { RunParity(DType::kF16); }

// A target outside [0, V) cannot return a Status from the device: its loss is NaN (caught by the
// loss scaler's finiteness check); other rows are unaffected.
TEST(CrossEntropyCudaTest, OutOfRangeTargetGivesNaNLoss) {
  MT_SKIP_WITHOUT_GPU("cross_entropy.bad_target", DType::kF32);
  const int64_t n = 3, v = 10;
  const std::vector<float> logits = testing::RandomVector<float>(n * v, 4);
  const std::vector<int32_t> targets = {2, 10, -1};
  DeviceBuffer d_logits(logits), d_targets(targets), d_losses(n * sizeof(float)),
      d_lse(n * sizeof(float));
  ASSERT_TRUE(cuda::CrossEntropyForward(d_losses.get<float>(), d_lse.get<float>(), d_logits.get(),
                                        d_targets.get<int32_t>(), n, v, kIgnore, DType::kF32,
                                        nullptr)
                  .ok());
  const std::vector<float> got = d_losses.Download<float>();
  EXPECT_TRUE(std::isfinite(got[0]));
  EXPECT_TRUE(std::isnan(got[1]));
  EXPECT_TRUE(std::isnan(got[2]));
}

}  // namespace
}  // namespace moetrain
