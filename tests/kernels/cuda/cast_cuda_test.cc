// CUDA CastRound / RoundToDType (bit for bit against kernels/cast.h on the CPU, over random values
// spanning every f16 regime plus the edge cases) and MarkNonFinite (against the CPU AllFinite of
// the same values). Skips cleanly without a GPU.
#include <cfloat>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/cast.h"
#include "kernels/cuda/cast.cuh"
#include "tests/kernels/cuda/cuda_parity.h"

namespace moetrain {
namespace {

using testing::DeviceBuffer;

// Random magnitudes from 2^-30 to 2^20 (f16 subnormals, normals, overflow; bf16 everything), both
// signs, then the edge cases: zeros, inf, NaN, f16 max / overflow midpoint, subnormal ties, bf16
// ties.
std::vector<float> CastInputs() {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mant(1.0, 2.0);
  std::uniform_int_distribution<int> expo(-30, 20);
  std::vector<float> v;
  for (int i = 0; i < 200000; ++i)
    v.push_back(static_cast<float>((i % 2 ? -1 : 1) * std::ldexp(mant(rng), expo(rng))));
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {0.f, -0.f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), 65504.f, 65519.f,
                  65520.f, 65536.f, FLT_MAX, FLT_MIN, std::ldexp(1.f, -24), std::ldexp(1.f, -25),
                  3 * std::ldexp(1.f, -25), std::ldexp(1.f, -14), 1.f + std::ldexp(1.f, -8),
                  1.f + 3 * std::ldexp(1.f, -8), 1.f + std::ldexp(1.f, -11)})
    for (float sign : {1.f, -1.f}) v.push_back(sign * x);
  return v;
}

std::vector<uint32_t> Bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * 4);
  return b;
}

void RunCastParity(DType dtype) {
  MT_SKIP_WITHOUT_GPU("cast_round", dtype);
  const std::vector<float> x = CastInputs();
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> want(n);
  kernels::CastRound(x.data(), want.data(), n, dtype);

  DeviceBuffer src(x), dst(n * sizeof(float));
  ASSERT_TRUE(cuda::CastRound(src.get<float>(), dst.get<float>(), n, dtype, nullptr).ok());
  const std::vector<uint32_t> got = Bits(dst.Download<float>()), ref = Bits(want);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (got[i] != ref[i] && mismatches++ < 5)
      ADD_FAILURE() << "CastRound " << DTypeName(dtype) << " [" << i << "] x=" << x[i] << " got 0x"
                    << std::hex << got[i] << " want 0x" << ref[i] << std::dec;
  }
  testing::PrintParityLine("cast_round(bits)", dtype, static_cast<double>(mismatches), 0, 0,
                           mismatches == 0 ? "PASS" : "FAIL");

  // In place gives the same bits.
  ASSERT_TRUE(cuda::RoundToDType(src.get<float>(), n, dtype, nullptr).ok());
  EXPECT_EQ(Bits(src.Download<float>()), ref) << "RoundToDType " << DTypeName(dtype);
}

TEST(CastCudaTest, F32CopiesBitForBit) { RunCastParity(DType::kF32); }
TEST(CastCudaTest, Bf16MatchesCpuBitForBit) { RunCastParity(DType::kBF16); }
TEST(CastCudaTest, F16MatchesCpuBitForBit) { RunCastParity(DType::kF16); }

// For each storage dtype: finite data leaves the flag 0; one inf / NaN / f16-overflowing value at
// the first, a middle or the last index sets it; the flag is sticky across calls. The reference is
// the CPU AllFinite of the same values after rounding to the storage dtype.
void RunFiniteParity(DType dtype) {
  MT_SKIP_WITHOUT_GPU("mark_non_finite", dtype);
  const int64_t n = 300007;
  DeviceBuffer flag(sizeof(unsigned int));
  auto check = [&](std::vector<float> x, const char* what) {
    for (float& v : x) v = testing::RoundTo(v, dtype);
    const bool want_bad = !kernels::AllFinite(x.data(), n);
    DeviceBuffer dx(testing::ToStorage(x, dtype));
    flag.Upload(std::vector<unsigned int>{0});
    ASSERT_TRUE(cuda::MarkNonFinite(dx.get(), n, dtype, flag.get<unsigned int>(), nullptr).ok());
    EXPECT_EQ(flag.Download<unsigned int>()[0] != 0, want_bad) << DTypeName(dtype) << " " << what;
    // Sticky: checking a clean tensor afterwards never clears it.
    DeviceBuffer clean(testing::ToStorage(std::vector<float>(n, 1.f), dtype));
    ASSERT_TRUE(cuda::MarkNonFinite(clean.get(), n, dtype, flag.get<unsigned int>(), nullptr).ok());
    EXPECT_EQ(flag.Download<unsigned int>()[0] != 0, want_bad) << DTypeName(dtype) << " " << what;
  };
  const std::vector<float> base = testing::RandomVector<float>(n, 3, 100.0);
  check(base, "finite");
  for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
    for (float bad : {INFINITY, -INFINITY, NAN, 70000.f}) {
      std::vector<float> x = base;
      x[at] = bad;
      check(x, (std::to_string(bad) + " at " + std::to_string(at)).c_str());
    }
  }
  testing::PrintParityLine("mark_non_finite", dtype, 0, 0, 0,
                           ::testing::Test::HasFailure() ? "FAIL" : "PASS");
}

TEST(CastCudaTest, MarkNonFiniteF32) { RunFiniteParity(DType::kF32); }
TEST(CastCudaTest, MarkNonFiniteBf16) { RunFiniteParity(DType::kBF16); }
TEST(CastCudaTest, MarkNonFiniteF16) { RunFiniteParity(DType::kF16); }

TEST(CastCudaTest, UnsupportedDtypeIsInvalidArgument) {
  EXPECT_EQ(cuda::CastRound(nullptr, nullptr, 4, DType::kF64, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda::MarkNonFinite(nullptr, 4, DType::kI32, nullptr, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moetrain
