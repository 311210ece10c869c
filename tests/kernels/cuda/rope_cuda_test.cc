// CUDA RoPE forward + backward against kernels/rope.h on the CPU (fp32 on inputs rounded to the
// storage dtype, the same fp32 table), for f32, bf16 and f16 storage. Skips cleanly without a GPU.
#include "kernels/cuda/rope.cuh"
#include "kernels/rope.h"
#include "tests/kernels/cuda/cuda_parity.h"

namespace moetrain {
namespace {

using testing::DeviceBuffer;
using testing::DownloadAsFloat;
using testing::ExpectParity;
using testing::RoundedRandom;
using testing::ToStorage;

void RunParity(DType dtype) {
  MT_SKIP_WITHOUT_GPU("rope", dtype);
  const int64_t b = 2, s = 17, h = 3, d = 64, max_pos = 32, n = b * s * h * d;
  std::vector<float> cos(max_pos * d / 2), sin(max_pos * d / 2);
  kernels::RopeTable(cos.data(), sin.data(), max_pos, d, 10000.0);
  const std::vector<float> x = RoundedRandom(n, 1, dtype), dy = RoundedRandom(n, 2, dtype);
  std::vector<float> y = x, dx = dy;
  kernels::RopeForward(y.data(), cos.data(), sin.data(), b, s, h, d);
  kernels::RopeBackward(dx.data(), cos.data(), sin.data(), b, s, h, d);

  DeviceBuffer d_cos(cos), d_sin(sin), d_x(ToStorage(x, dtype)), d_dy(ToStorage(dy, dtype));
  ASSERT_TRUE(cuda::RopeForward(d_x.get(), d_cos.get<float>(), d_sin.get<float>(), b, s, h, d,
                                dtype, nullptr)
                  .ok());
  ASSERT_TRUE(cuda::RopeBackward(d_dy.get(), d_cos.get<float>(), d_sin.get<float>(), b, s, h, d,
                                 dtype, nullptr)
                  .ok());
  // Two fp32 products and a sum, then one rounding to storage.
  const double u = testing::UnitRoundoff(dtype), rtol = 4 * u + 4 * 0x1p-24, atol = rtol;
  EXPECT_TRUE(ExpectParity("rope.fwd", dtype, DownloadAsFloat(d_x, dtype), y, rtol, atol));
  EXPECT_TRUE(ExpectParity("rope.bwd", dtype, DownloadAsFloat(d_dy, dtype), dx, rtol, atol));
}

TEST(RopeCudaTest, F32MatchesCpu) { RunParity(DType::kF32); }
TEST(RopeCudaTest, Bf16MatchesCpu) { RunParity(DType::kBF16); }
TEST(RopeCudaTest, F16MatchesCpu) { RunParity(DType::kF16); }

TEST(RopeCudaTest, OddHeadDimIsInvalidArgument) {
  const absl::Status st =
      cuda::RopeForward(nullptr, nullptr, nullptr, 1, 1, 1, 7, DType::kF32, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("D = 7"), std::string::npos) << st;
}

}  // namespace
}  // namespace moetrain
