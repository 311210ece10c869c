// CUDA RMSNorm forward + backward against kernels/rmsnorm.h on the CPU (fp32 on inputs rounded to
// the storage dtype), for f32, bf16 and f16 storage. Skips cleanly without a GPU.
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/rmsnorm.h"
#include "tests/kernels/cuda/cuda_parity.h"

namespace moetrain {
namespace {

using testing::DeviceBuffer;
using testing::DownloadAsFloat;
using testing::ExpectParity;
using testing::RoundedRandom;
using testing::ToStorage;

void RunParity(DType dtype, int64_t n, int64_t c) {
  MT_SKIP_WITHOUT_GPU("rmsnorm", dtype);
  const double eps = 1e-6;
  const std::vector<float> x = RoundedRandom(n * c, 1, dtype, 2.0), w = RoundedRandom(c, 2, dtype),
                           dy = RoundedRandom(n * c, 3, dtype);
  const std::vector<float> dw0 = testing::RandomVector<float>(c, 4);  // dw accumulates onto this

  std::vector<float> y(n * c), rstd(n), dx(n * c), dw = dw0;
  kernels::RmsNormForward(y.data(), rstd.data(), x.data(), w.data(), n, c, eps);
  kernels::RmsNormBackward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), n, c);

  DeviceBuffer d_x(ToStorage(x, dtype)), d_w(ToStorage(w, dtype)), d_dy(ToStorage(dy, dtype));
  DeviceBuffer d_y(n * c * DTypeSize(dtype)), d_dx(n * c * DTypeSize(dtype)),
      d_rstd(n * sizeof(float));
  DeviceBuffer d_dw(dw0);
  ASSERT_TRUE(cuda::RmsNormForward(d_y.get(), d_rstd.get<float>(), d_x.get(), d_w.get(), n, c,
                                   static_cast<float>(eps), dtype, nullptr)
                  .ok());
  ASSERT_TRUE(cuda::RmsNormBackward(d_dx.get(), d_dw.get<float>(), d_dy.get(), d_x.get(), d_w.get(),
                                    d_rstd.get<float>(), n, c, dtype, nullptr)
                  .ok());

  // y, dx: fp32 math rounded once to storage -> a few unit roundoffs; the fp32 sums over C add
  // ~C * 2^-24 relative. rstd and dw stay fp32: only summation-order differences (C or N terms).
  const double u = testing::UnitRoundoff(dtype),
               f32_sum = static_cast<double>(std::max(n, c)) * 0x1p-24;
  const double rtol = 4 * u + f32_sum, atol = 8 * u + f32_sum;
  EXPECT_TRUE(ExpectParity("rmsnorm.y", dtype, DownloadAsFloat(d_y, dtype), y, rtol, atol));
  EXPECT_TRUE(ExpectParity("rmsnorm.rstd", dtype, d_rstd.Download<float>(), rstd, 4 * f32_sum, 0));
  EXPECT_TRUE(ExpectParity("rmsnorm.dx", dtype, DownloadAsFloat(d_dx, dtype), dx, rtol, atol));
  EXPECT_TRUE(
      ExpectParity("rmsnorm.dw", dtype, d_dw.Download<float>(), dw, 4 * f32_sum, 4 * f32_sum));
}

// C = 1000 is not a multiple of the block size; a row wider than a block (C = 3000) strides.
TEST(RmsNormCudaTest, F32MatchesCpu) { RunParity(DType::kF32, 37, 1000); }
TEST(RmsNormCudaTest, Bf16MatchesCpu) { RunParity(DType::kBF16, 37, 1000); }
TEST(RmsNormCudaTest, F16MatchesCpu) { RunParity(DType::kF16, 37, 1000); }
TEST(RmsNormCudaTest, WideRowsF32MatchesCpu) { RunParity(DType::kF32, 5, 3000); }

TEST(RmsNormCudaTest, ZeroWidthIsInvalidArgument) {
  EXPECT_EQ(
      cuda::RmsNormForward(nullptr, nullptr, nullptr, nullptr, 4, 0, 1e-6f, DType::kF32, nullptr)
          .code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moetrain
