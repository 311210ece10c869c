// RoundToDType / CastRound against the scalar conversions of core/dtype.h (an independent
// implementation: integer rebias for f16 normals, FPU magic-number rounding for subnormals), bit
// for bit, on random values over many scales, random bit patterns (every class of float: NaN, inf,
// float subnormals) and hand-picked edges; AllFinite against std::isfinite.
#include "kernels/cast.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moetrain::kernels {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float Reference(float x, DType d) {
  if (d == DType::kBF16) return Bf16ToFloat(FloatToBf16(x));
  return F16ToFloat(FloatToF16(x));
}

// Values that exercise every rounding branch of both formats.
std::vector<float> TestValues() {
  std::vector<float> v;
  std::mt19937_64 rng(7);
  // Random magnitudes from 2^-30 to 2^20, both signs.
  std::uniform_real_distribution<double> log2mag(-30.0, 20.0);
  for (int i = 0; i < 20000; ++i) {
    const double m = std::exp2(log2mag(rng));
    v.push_back(static_cast<float>(i % 2 ? m : -m));
  }
  // Random bit patterns: NaNs with payloads, infs, float subnormals, everything.
  for (int i = 0; i < 200000; ++i) v.push_back(FromBits(static_cast<uint32_t>(rng())));
  // Exact ties for bf16 (low 16 bits = 0x8000) and f16 normals (low 13 bits = 0x1000), and ties
  // between f16 subnormals (odd multiples of 2^-25).
  for (int i = 0; i < 5000; ++i) {
    const uint32_t r = static_cast<uint32_t>(rng());
    v.push_back(FromBits((r & 0xffff0000u) | 0x8000u));
    const uint32_t exp = 113 + static_cast<uint32_t>(rng() % 30);  // f16 normal exponents
    v.push_back(FromBits((r & 0x807fe000u) | (exp << 23) | 0x1000u));
    v.push_back(static_cast<float>((2 * (rng() % 1024) + 1) * std::exp2(-25.0)));
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float e : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                  -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                  65504.0f, 65519.0f, 65519.996f, 65520.0f, -65520.0f, 65536.0f,
                  // largest finite bf16 and the first value that rounds past it to inf
                  FromBits(0x7f7f0000u), FromBits(0x7f7f7fffu), FromBits(0x7f7f8000u),
                  std::exp2(-14.0f), std::exp2(-24.0f), std::exp2(-25.0f), 1.5f * std::exp2(-25.0f),
                  std::exp2(-26.0f), 0.99999994f * std::exp2(-14.0f), 1.0f, 1.0009766f}) {
    v.push_back(e);
  }
  return v;
}

void ExpectMatchesScalar(DType d) {
  const std::vector<float> in = TestValues();
  std::vector<float> x = in, copy(in.size(), 0.0f);
  RoundToDType(x.data(), static_cast<int64_t>(x.size()), d);
  CastRound(in.data(), copy.data(), static_cast<int64_t>(in.size()), d);
  int bad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = Reference(in[i], d);
    if (Bits(x[i]) != Bits(want) || Bits(copy[i]) != Bits(want)) {
      if (++bad <= 5)
        ADD_FAILURE() << DTypeName(d) << " input bits 0x" << std::hex << Bits(in[i]) << " got 0x"
                      << Bits(x[i]) << " / 0x" << Bits(copy[i]) << " want 0x" << Bits(want);
    }
  }
  EXPECT_EQ(bad, 0) << "of " << in.size() << " values";
}

TEST(CastTest, Bf16MatchesScalarConversion) { ExpectMatchesScalar(DType::kBF16); }
TEST(CastTest, F16MatchesScalarConversion) { ExpectMatchesScalar(DType::kF16); }

TEST(CastTest, KnownValues) {
  // Independent of core/dtype.h: values worked out by hand.
  std::vector<float> x = {65504.0f,
                          65519.0f,
                          65520.0f,
                          std::exp2(-25.0f),
                          1.5f * std::exp2(-25.0f),
                          1.0f + std::exp2(-11.0f),
                          1.0f + 3 * std::exp2(-11.0f)};
  RoundToDType(x.data(), static_cast<int64_t>(x.size()), DType::kF16);
  EXPECT_EQ(x[0], 65504.0f);
  EXPECT_EQ(x[1], 65504.0f);
  EXPECT_TRUE(std::isinf(x[2]));
  EXPECT_EQ(x[3], 0.0f);               // tie between 0 and 2^-24: to even (0)
  EXPECT_EQ(x[4], std::exp2(-24.0f));  // above the tie
  EXPECT_EQ(x[5], 1.0f);               // tie: to even mantissa
  EXPECT_EQ(x[6], 1.0f + std::exp2(-9.0f));
  // bf16: ties to even; the tie above the largest finite bf16 (odd mantissa) overflows to inf.
  std::vector<float> y = {1.0f + std::exp2(-8.0f), 1.0f + 3 * std::exp2(-8.0f),
                          FromBits(0x7f7f8000u), FromBits(0x7f7f7fffu)};
  RoundToDType(y.data(), 4, DType::kBF16);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f + std::exp2(-6.0f));
  EXPECT_TRUE(std::isinf(y[2]));
  EXPECT_EQ(Bits(y[3]), 0x7f7f0000u);
}

TEST(CastTest, F32IsIdentity) {
  const std::vector<float> in = TestValues();
  std::vector<float> x = in, copy(in.size());
  RoundToDType(x.data(), static_cast<int64_t>(x.size()), DType::kF32);
  CastRound(in.data(), copy.data(), static_cast<int64_t>(in.size()), DType::kF32);
  EXPECT_EQ(std::memcmp(x.data(), in.data(), in.size() * 4), 0);
  EXPECT_EQ(std::memcmp(copy.data(), in.data(), in.size() * 4), 0);
}

TEST(CastTest, DoubleRoundsThroughFloat) {
  std::vector<double> x = {1.0 + std::ldexp(1.0, -8), 70000.0, 0.1};
  RoundToDType(x.data(), 3, DType::kBF16);
  EXPECT_EQ(x[0], 1.0);
  EXPECT_EQ(x[1], static_cast<double>(Reference(70000.0f, DType::kBF16)));
  EXPECT_EQ(x[2], static_cast<double>(Reference(0.1f, DType::kBF16)));
  std::vector<double> h = {70000.0};
  RoundToDType(h.data(), 1, DType::kF16);
  EXPECT_TRUE(std::isinf(h[0]));
}

TEST(CastTest, AllFiniteMatchesIsFinite) {
  const std::vector<float> values = TestValues();
  std::mt19937_64 rng(3);
  // Large finite arrays (parallel path) with one non-finite value planted at random places.
  const int64_t n = (1 << 17) + 3;
  std::vector<float> x(n);
  std::normal_distribution<float> normal(0.0f, 1000.0f);
  for (auto& v : x) v = normal(rng);
  EXPECT_TRUE(AllFinite(x.data(), n));
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN(), FromBits(0xffc12345u)}) {
    for (int64_t pos : {int64_t{0}, n - 1, static_cast<int64_t>(rng() % n)}) {
      const float saved = x[pos];
      x[pos] = bad;
      EXPECT_FALSE(AllFinite(x.data(), n)) << "non-finite at " << pos;
      x[pos] = saved;
    }
  }
  // Each test value alone, and small windows, against std::isfinite.
  for (size_t i = 0; i + 4 <= values.size(); i += 97) {
    bool want = true;
    for (size_t j = i; j < i + 4; ++j) want = want && std::isfinite(values[j]);
    EXPECT_EQ(AllFinite(values.data() + i, 4), want) << "window at " << i;
  }
  std::vector<double> d = {1.0, 2.0, std::nan("")};
  EXPECT_TRUE(AllFinite(d.data(), 2));
  EXPECT_FALSE(AllFinite(d.data(), 3));
}

}  // namespace
}  // namespace moetrain::kernels
