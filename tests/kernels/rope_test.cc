// RoPE against an independent reference: each pair (x_i, x_{i+D/2}) as the complex number
// x_i + i x_{i+D/2} multiplied by exp(i * angle), angles in long double. Position 0 is the identity;
// the backward is the adjoint (and inverse) of the forward, and matches central differences.
#include "kernels/rope.h"

#include <cmath>
#include <complex>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::Dot;
using ::moetrain::testing::FiniteDifferenceGradient;
using ::moetrain::testing::RandomVector;
using ::moetrain::testing::RelativeL2Error;

constexpr double kTheta = 10000.0;

long double ReferenceAngle(int64_t pos, int64_t i, int64_t d, double theta) {
  return static_cast<long double>(pos) *
         std::pow(static_cast<long double>(theta), -2.0L * static_cast<long double>(i) / d);
}

std::vector<double> ReferenceForward(const std::vector<double>& x, int64_t b, int64_t s, int64_t h,
                                     int64_t d, double theta) {
  std::vector<double> y(x.size());
  const int64_t half = d / 2;
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t ss = 0; ss < s; ++ss)
      for (int64_t hh = 0; hh < h; ++hh) {
        const int64_t base = ((bb * s + ss) * h + hh) * d;
        for (int64_t i = 0; i < half; ++i) {
          std::complex<long double> z(x[base + i], x[base + i + half]);
          z *= std::polar(1.0L, ReferenceAngle(ss, i, d, theta));
          y[base + i] = static_cast<double>(z.real());
          y[base + i + half] = static_cast<double>(z.imag());
        }
      }
  return y;
}

TEST(RopeTest, TableMatchesLongDoubleAngles) {
  const int64_t max_pos = 97, d = 10;
  std::vector<double> cos(max_pos * d / 2), sin(max_pos * d / 2);
  RopeTable(cos.data(), sin.data(), max_pos, d, kTheta);
  std::vector<double> cos_ref(cos.size()), sin_ref(sin.size());
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < d / 2; ++i) {
      cos_ref[p * d / 2 + i] = static_cast<double>(std::cos(ReferenceAngle(p, i, d, kTheta)));
      sin_ref[p * d / 2 + i] = static_cast<double>(std::sin(ReferenceAngle(p, i, d, kTheta)));
    }
  EXPECT_TRUE(AllClose(cos, cos_ref, 0, 1e-13, "cos"));
  EXPECT_TRUE(AllClose(sin, sin_ref, 0, 1e-13, "sin"));
  std::vector<float> cosf(cos.size()), sinf(sin.size());
  RopeTable(cosf.data(), sinf.data(), max_pos, d, kTheta);
  EXPECT_TRUE(AllClose(cosf, cos_ref, 0, 1e-7, "f32 cos"));
  EXPECT_TRUE(AllClose(sinf, sin_ref, 0, 1e-7, "f32 sin"));
}

TEST(RopeTest, ForwardMatchesComplexReference) {
  const int64_t b = 2, s = 7, h = 3, d = 10, max_pos = 11;  // D/2 = 5 is odd; S < max_pos
  std::vector<double> cos(max_pos * d / 2), sin(max_pos * d / 2);
  RopeTable(cos.data(), sin.data(), max_pos, d, kTheta);
  auto x = RandomVector<double>(b * s * h * d, 1);
  auto want = ReferenceForward(x, b, s, h, d, kTheta);

  auto y = x;
  RopeForward(y.data(), cos.data(), sin.data(), b, s, h, d);
  EXPECT_TRUE(AllClose(y, want, 1e-13, 1e-14, "f64 forward"));

  std::vector<float> cosf(cos.size()), sinf(sin.size());
  RopeTable(cosf.data(), sinf.data(), max_pos, d, kTheta);
  auto yf = Cast<float>(x);
  RopeForward(yf.data(), cosf.data(), sinf.data(), b, s, h, d);
  EXPECT_TRUE(AllClose(yf, y, 1e-5, 1e-6, "f32 vs f64 forward"));
  std::printf("  rope forward vs complex ref: f64 %.3g, f32 %.3g (rel L2)\n", RelativeL2Error(y, want),
              RelativeL2Error(yf, want));

  // Position 0 of every sequence is the identity, bit for bit.
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t k = 0; k < h * d; ++k) {
      const int64_t idx = bb * s * h * d + k;
      ASSERT_EQ(y[idx], x[idx]) << "batch " << bb << " elem " << k;
      ASSERT_EQ(yf[idx], static_cast<float>(x[idx]));
    }
}

TEST(RopeTest, BackwardIsAdjointAndInverse) {
  const int64_t b = 3, s = 37, h = 5, d = 34;  // large enough for the parallel path
  std::vector<double> cos(s * d / 2), sin(s * d / 2);
  RopeTable(cos.data(), sin.data(), s, d, 500000.0);
  auto x = RandomVector<double>(b * s * h * d, 2), g = RandomVector<double>(b * s * h * d, 3);
  auto rx = x, rtg = g;
  RopeForward(rx.data(), cos.data(), sin.data(), b, s, h, d);
  RopeBackward(rtg.data(), cos.data(), sin.data(), b, s, h, d);
  // <R x, g> = <x, R^T g>
  const double lhs = Dot(rx, g), rhs = Dot(x, rtg);
  EXPECT_NEAR(lhs, rhs, 1e-12 * std::fabs(lhs) + 1e-12);
  // R^T R x = x
  auto back = rx;
  RopeBackward(back.data(), cos.data(), sin.data(), b, s, h, d);
  EXPECT_TRUE(AllClose(back, x, 1e-13, 1e-14, "R^T R x"));
}

TEST(RopeTest, BackwardMatchesFiniteDifferences) {
  const int64_t b = 2, s = 4, h = 3, d = 8;
  std::vector<double> cos(s * d / 2), sin(s * d / 2);
  RopeTable(cos.data(), sin.data(), s, d, kTheta);
  auto x = RandomVector<double>(b * s * h * d, 4), r = RandomVector<double>(b * s * h * d, 5);
  std::vector<double> y;
  auto loss = [&] {
    y = x;
    RopeForward(y.data(), cos.data(), sin.data(), b, s, h, d);
    return Dot(r, y);
  };
  auto fd = FiniteDifferenceGradient(x, 1e-4, loss);
  auto dx = r;
  RopeBackward(dx.data(), cos.data(), sin.data(), b, s, h, d);
  const double err = RelativeL2Error(dx, fd);
  std::printf("  rope backward vs FD: rel L2 error %.3g\n", err);
  EXPECT_LT(err, 1e-6);

  std::vector<float> cosf(cos.size()), sinf(sin.size());
  RopeTable(cosf.data(), sinf.data(), s, d, kTheta);
  auto dxf = Cast<float>(r);
  RopeBackward(dxf.data(), cosf.data(), sinf.data(), b, s, h, d);
  EXPECT_TRUE(AllClose(dxf, dx, 1e-5, 1e-6, "f32 vs f64 backward"));
}

TEST(RopeDeathTest, OddHeadDimAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> cos(8), sin(8);
  EXPECT_DEATH(RopeTable(cos.data(), sin.data(), 2, 5, kTheta), "must be even");
}

}  // namespace
}  // namespace moetrain::kernels
