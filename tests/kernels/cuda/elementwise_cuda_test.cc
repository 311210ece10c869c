// CUDA Fill / Add / AddInPlace / Scale against kernels/elementwise.h on the CPU (fp32 on inputs
// rounded to the storage dtype), for f32, bf16 and f16 storage. Skips cleanly without a GPU.
#include "kernels/cuda/elementwise.cuh"
#include "kernels/elementwise.h"
#include "tests/kernels/cuda/cuda_parity.h"

namespace moetrain {
namespace {

using testing::DeviceBuffer;
using testing::DownloadAsFloat;
using testing::ExpectParity;
using testing::RoundedRandom;
using testing::ToStorage;

constexpr int64_t kN = 100003;  // not a multiple of the block size

// One final rounding of an fp32 result: half an ulp relative, plus a little slack for tiny values.
double Rtol(DType dtype) { return 2 * testing::UnitRoundoff(dtype); }

void RunParity(DType dtype) {
  MT_SKIP_WITHOUT_GPU("elementwise", dtype);
  const std::vector<float> a = RoundedRandom(kN, 1, dtype), b = RoundedRandom(kN, 2, dtype);
  const float s = testing::RoundTo(-1.37f, dtype), fill = testing::RoundTo(0.3f, dtype);
  const double rtol = Rtol(dtype), atol = 1e-6;

  // CPU references in fp32.
  std::vector<float> add(kN), add_in_place = a, scaled = a, filled(kN);
  kernels::Add(add.data(), a.data(), b.data(), kN);
  kernels::AddInPlace(add_in_place.data(), b.data(), kN);
  kernels::Scale(scaled.data(), s, kN);
  kernels::Fill(filled.data(), fill, kN);

  DeviceBuffer da(ToStorage(a, dtype)), db(ToStorage(b, dtype)), dy(ToStorage(a, dtype));
  ASSERT_TRUE(cuda::Add(dy.get(), da.get(), db.get(), kN, dtype, nullptr).ok());
  EXPECT_TRUE(ExpectParity("add", dtype, DownloadAsFloat(dy, dtype), add, rtol, atol));

  dy.Upload(ToStorage(a, dtype));
  ASSERT_TRUE(cuda::AddInPlace(dy.get(), db.get(), kN, dtype, nullptr).ok());
  EXPECT_TRUE(
      ExpectParity("add_in_place", dtype, DownloadAsFloat(dy, dtype), add_in_place, rtol, atol));

  dy.Upload(ToStorage(a, dtype));
  ASSERT_TRUE(cuda::Scale(dy.get(), s, kN, dtype, nullptr).ok());
  EXPECT_TRUE(ExpectParity("scale", dtype, DownloadAsFloat(dy, dtype), scaled, rtol, atol));

  ASSERT_TRUE(cuda::Fill(dy.get(), fill, kN, dtype, nullptr).ok());
  EXPECT_TRUE(ExpectParity("fill", dtype, DownloadAsFloat(dy, dtype), filled, 0, 0));
}

TEST(ElementwiseCudaTest, F32MatchesCpu) { RunParity(DType::kF32); }
TEST(ElementwiseCudaTest, Bf16MatchesCpu) { RunParity(DType::kBF16); }
TEST(ElementwiseCudaTest, F16MatchesCpu) { RunParity(DType::kF16); }

// The dtype switch refuses f64 / integer storage with a message naming the op (no device needed:
// the launcher returns before any launch).
TEST(ElementwiseCudaTest, UnsupportedDtypeIsInvalidArgument) {
  const absl::Status s = cuda::Add(nullptr, nullptr, nullptr, 4, DType::kF64, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("Add"), std::string::npos) << s;
  EXPECT_NE(s.message().find("f64"), std::string::npos) << s;
}

}  // namespace
}  // namespace moetrain
