// SwiGLU against a float64 reference (including saturated gates), backward against central
// differences, float vs double.
#include "kernels/swiglu.h"

#include <cmath>
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

long double Sigmoid(long double a) { return 1.0L / (1.0L + std::exp(-a)); }

TEST(SwigluTest, ForwardMatchesReference) {
  const int64_t n = 1001;
  auto a = RandomVector<double>(n, 1, 3.0), b = RandomVector<double>(n, 2);
  // Saturated gates: exp(-a) overflows to inf (float) or underflows to 0; h stays finite.
  a[0] = -800;
  a[1] = 800;
  a[2] = -90;
  a[3] = 90;
  a[4] = 0;
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = static_cast<double>(a[i] * Sigmoid(a[i]) * b[i]);

  std::vector<double> h(n);
  SwigluForward(h.data(), a.data(), b.data(), n);
  EXPECT_TRUE(AllClose(h, want, 1e-14, 1e-300, "f64 forward"));

  auto af = Cast<float>(a), bf = Cast<float>(b);
  std::vector<float> hf(n);
  SwigluForward(hf.data(), af.data(), bf.data(), n);
  EXPECT_TRUE(AllClose(hf, want, 1e-6, 1e-30, "f32 forward"));
  std::printf("  swiglu forward rel L2: f64 %.3g, f32 %.3g\n", RelativeL2Error(h, want),
              RelativeL2Error(hf, want));
}

TEST(SwigluTest, BackwardMatchesFiniteDifferences) {
  const int64_t n = 257;
  auto a = RandomVector<double>(n, 3, 2.0), b = RandomVector<double>(n, 4), r = RandomVector<double>(n, 5);
  std::vector<double> h(n);
  auto loss = [&] {
    SwigluForward(h.data(), a.data(), b.data(), n);
    return Dot(r, h);
  };
  auto fd_a = FiniteDifferenceGradient(a, 1e-5, loss);
  auto fd_b = FiniteDifferenceGradient(b, 1e-5, loss);
  std::vector<double> da(n, 7.0), db(n, 7.0);  // overwritten
  SwigluBackward(da.data(), db.data(), r.data(), a.data(), b.data(), n);
  const double ea = RelativeL2Error(da, fd_a), eb = RelativeL2Error(db, fd_b);
  std::printf("  swiglu backward vs FD: da %.3g, db %.3g\n", ea, eb);
  EXPECT_LT(ea, 1e-6);
  EXPECT_LT(eb, 1e-6);

  auto af = Cast<float>(a), bf = Cast<float>(b), rf = Cast<float>(r);
  std::vector<float> daf(n), dbf(n);
  SwigluBackward(daf.data(), dbf.data(), rf.data(), af.data(), bf.data(), n);
  EXPECT_TRUE(AllClose(daf, da, 1e-5, 1e-6, "f32 vs f64 da"));
  EXPECT_TRUE(AllClose(dbf, db, 1e-5, 1e-6, "f32 vs f64 db"));
}

TEST(SwigluTest, SaturatedGradientsAreFinite) {
  std::vector<float> a = {-800.f, -100.f, 100.f, 800.f}, b(4, 2.f), dh(4, 1.f), da(4), db(4);
  SwigluBackward(da.data(), db.data(), dh.data(), a.data(), b.data(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::isfinite(da[i])) << i;
    EXPECT_TRUE(std::isfinite(db[i])) << i;
  }
  EXPECT_EQ(da[0], 0.f);
  EXPECT_EQ(db[0], 0.f);
  EXPECT_EQ(da[3], 2.f);   // silu'(a) -> 1 for large a
  EXPECT_EQ(db[3], 800.f);
}

TEST(SwigluTest, LargeInputTakesParallelPath) {
  const int64_t n = (1 << 15) + 3;
  auto a = RandomVector<double>(n, 6), b = RandomVector<double>(n, 7);
  std::vector<double> h(n), want(n);
  SwigluForward(h.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) want[i] = static_cast<double>(a[i] * Sigmoid(a[i]) * b[i]);
  EXPECT_TRUE(AllClose(h, want, 1e-14, 1e-300, "f64 forward (parallel)"));
}

}  // namespace
}  // namespace moetrain::kernels
