// dtype conversions against an independent float64 reference: for every f16 / bf16 bit pattern, decode
// with ldexp; for float inputs, the expected result is the representable neighbour nearest in float64
// with ties to the even mantissa.
#include "core/dtype.h"

#include <cmath>
#include <cstring>
#include <random>

#include "gtest/gtest.h"

namespace moetrain {
namespace {

double DecodeF16Reference(uint16_t h) {
  int sign = (h >> 15) ? -1 : 1;
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

double DecodeBf16Reference(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;  // bf16 is the top half of a float; decoding by bit shift is the definition
}

// Nearest representable value by exhaustive search over the sorted finite positive codes.
template <typename Decode>
uint16_t NearestEven(double x, Decode decode, uint16_t max_finite) {
  double ax = std::fabs(x);
  uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  uint16_t lo = 0, hi = max_finite;
  if (ax >= decode(max_finite)) {
    // Overflow: round to inf beyond the halfway point to the next (virtual) power.
    double next = decode(max_finite) + (decode(max_finite) - decode(max_finite - 1));
    double half = (decode(max_finite) + next) / 2;
    if (ax >= half) return sign | (max_finite + 1);  // inf pattern follows max finite in both formats
    return sign | max_finite;
  }
  while (hi - lo > 1) {
    uint16_t mid = (lo + hi) / 2;
    if (decode(mid) <= ax) lo = mid; else hi = mid;
  }
  double dl = ax - decode(lo), dh = decode(hi) - ax;
  uint16_t r = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
  return sign | r;
}

TEST(DTypeTest, F16DecodesEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    double want = DecodeF16Reference(static_cast<uint16_t>(h));
    float got = F16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << "pattern " << h;
    }
  }
}

TEST(DTypeTest, F16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = F16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToF16(f), h) << "pattern " << h;
  }
}

TEST(DTypeTest, F16RoundsToNearestEven) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  int checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    // Bias toward the f16 range so subnormals, normals and overflow are all covered.
    if (std::fabs(f) > 1e6f || std::fabs(f) < 1e-9f) f = std::ldexp(static_cast<float>(u % 100000) / 99991.f, static_cast<int>(u % 44) - 28);
    if (u & 1) f = -f;
    ASSERT_EQ(FloatToF16(f), NearestEven(f, DecodeF16Reference, 0x7bff)) << "value " << f;
    ++checked;
  }
  EXPECT_GT(checked, 1000000);
  // Exact halfway cases between 1 and the next f16 (1 + 2^-10): ties go to even.
  EXPECT_EQ(FloatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);          // to 1.0 (even)
  EXPECT_EQ(FloatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);      // to 1 + 2^-9 (even)
  EXPECT_EQ(FloatToF16(65520.0f), 0x7c00);                              // rounds to inf
  EXPECT_EQ(FloatToF16(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -25)), 0x0000);                 // half the smallest subnormal: tie to 0
  EXPECT_EQ(FloatToF16(std::ldexp(1.5f, -25)), 0x0001);
}

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(f))));
      continue;
    }
    if (std::isinf(f)) {
      EXPECT_EQ(Bf16ToFloat(FloatToBf16(f)), f);
      continue;
    }
    ASSERT_EQ(FloatToBf16(f), NearestEven(f, DecodeBf16Reference, 0x7f7f)) << "value " << f;
  }
  EXPECT_EQ(FloatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even (1.0)
  EXPECT_EQ(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF64), 8u);
  EXPECT_STREQ(DTypeName(DType::kF16), "f16");
  EXPECT_EQ(*ParseDType("bf16"), DType::kBF16);
  EXPECT_FALSE(ParseDType("f8").ok());
}

}  // namespace
}  // namespace moetrain
