// RMSNorm against a float64 reference; backward (dx and the accumulated dw) against central
// differences of a random linear functional; float vs double; dw determinism across thread counts.
#include "kernels/rmsnorm.h"

#include <omp.h>

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

constexpr double kEps = 1e-5;

void ReferenceForward(std::vector<double>& y, std::vector<double>& rstd, const std::vector<double>& x,
                      const std::vector<double>& w, int64_t n, int64_t c, double eps) {
  for (int64_t i = 0; i < n; ++i) {
    long double ss = 0;
    for (int64_t j = 0; j < c; ++j) ss += static_cast<long double>(x[i * c + j]) * x[i * c + j];
    const double r = static_cast<double>(1.0L / std::sqrt(ss / c + eps));
    rstd[i] = r;
    for (int64_t j = 0; j < c; ++j) y[i * c + j] = x[i * c + j] * r * w[j];
  }
}

TEST(RmsNormTest, ForwardMatchesReference) {
  const int64_t n = 13, c = 67;
  auto x = RandomVector<double>(n * c, 1, 2.0);
  auto w = RandomVector<double>(c, 2);
  std::vector<double> y_ref(n * c), r_ref(n);
  ReferenceForward(y_ref, r_ref, x, w, n, c, kEps);

  std::vector<double> y(n * c), r(n);
  RmsNormForward(y.data(), r.data(), x.data(), w.data(), n, c, kEps);
  EXPECT_TRUE(AllClose(r, r_ref, 1e-14, 0, "f64 rstd"));
  EXPECT_TRUE(AllClose(y, y_ref, 1e-14, 1e-15, "f64 y"));

  auto xf = Cast<float>(x);
  auto wf = Cast<float>(w);
  std::vector<float> yf(n * c), rf(n);
  RmsNormForward(yf.data(), rf.data(), xf.data(), wf.data(), n, c, kEps);
  EXPECT_TRUE(AllClose(rf, r_ref, 1e-6, 0, "f32 rstd"));
  EXPECT_TRUE(AllClose(yf, y, 1e-5, 1e-6, "f32 vs f64 y"));
  std::printf("  rmsnorm forward: f64 rel L2 %.3g, f32 rel L2 %.3g\n", RelativeL2Error(y, y_ref),
              RelativeL2Error(yf, y_ref));
}

TEST(RmsNormTest, BackwardMatchesFiniteDifferences) {
  const int64_t n = 7, c = 31;
  auto x = RandomVector<double>(n * c, 3);
  auto w = RandomVector<double>(c, 4);
  auto rvec = RandomVector<double>(n * c, 5);  // L = <rvec, y>
  std::vector<double> y(n * c), rstd(n);
  auto loss = [&] {
    RmsNormForward(y.data(), rstd.data(), x.data(), w.data(), n, c, kEps);
    return Dot(rvec, y);
  };
  auto fd_x = FiniteDifferenceGradient(x, 1e-5, loss);
  auto fd_w = FiniteDifferenceGradient(w, 1e-5, loss);

  RmsNormForward(y.data(), rstd.data(), x.data(), w.data(), n, c, kEps);
  std::vector<double> dx(n * c, 123.0);  // overwritten
  const auto dw0 = RandomVector<double>(c, 6);
  std::vector<double> dw = dw0;  // accumulated
  RmsNormBackward(dx.data(), dw.data(), rvec.data(), x.data(), w.data(), rstd.data(), n, c);
  std::vector<double> dw_delta(c);
  for (int64_t j = 0; j < c; ++j) dw_delta[j] = dw[j] - dw0[j];

  const double ex = RelativeL2Error(dx, fd_x), ew = RelativeL2Error(dw_delta, fd_w);
  std::printf("  rmsnorm backward vs FD: dx %.3g, dw %.3g\n", ex, ew);
  EXPECT_LT(ex, 1e-6);
  EXPECT_LT(ew, 1e-6);

  // float vs double.
  auto xf = Cast<float>(x), wf = Cast<float>(w), rf = Cast<float>(rvec);
  std::vector<float> yf(n * c), rstdf(n), dxf(n * c);
  auto dwf = Cast<float>(dw0);
  RmsNormForward(yf.data(), rstdf.data(), xf.data(), wf.data(), n, c, kEps);
  RmsNormBackward(dxf.data(), dwf.data(), rf.data(), xf.data(), wf.data(), rstdf.data(), n, c);
  EXPECT_TRUE(AllClose(dxf, dx, 1e-5, 1e-5, "f32 vs f64 dx"));
  EXPECT_TRUE(AllClose(dwf, dw, 1e-5, 1e-5, "f32 vs f64 dw"));
}

TEST(RmsNormTest, WeightGradientIsBitwiseDeterministicAcrossThreadCounts) {
  const int64_t n = 257, c = 129;  // n * c takes the parallel path
  auto x = RandomVector<float>(n * c, 7), w = RandomVector<float>(c, 8), dy = RandomVector<float>(n * c, 9);
  std::vector<float> y(n * c), rstd(n);
  RmsNormForward(y.data(), rstd.data(), x.data(), w.data(), n, c, kEps);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> dws, dxs;
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    std::vector<float> dx(n * c), dw = RandomVector<float>(c, 10);
    RmsNormBackward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), n, c);
    dws.push_back(dw);
    dxs.push_back(dx);
  }
  omp_set_num_threads(saved);
  for (size_t k = 1; k < dws.size(); ++k) {
    EXPECT_EQ(dws[k], dws[0]) << "run " << k;
    EXPECT_EQ(dxs[k], dxs[0]) << "run " << k;
  }
}

}  // namespace
}  // namespace moetrain::kernels
