// Matmul (OpenBLAS) against a naive float64 triple loop: all four transpose combinations, alpha and
// beta accumulation, k = 0, batched with padded strides, and the Linear layer forward / backward;
// the OpenMP panel path (single-threaded BLAS) bitwise equal for 1, 2 and 3 threads.
#include "kernels/matmul.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/threads.h"

extern "C" int openblas_get_num_threads(void);
extern "C" void openblas_set_num_threads(int num_threads);

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::RandomVector;

// c(m,n) = alpha op(a) op(b) + beta c, with the same layout rules as the header, in long double.
void ReferenceMatmul(double* c, const double* a, const double* b, int64_t m, int64_t n, int64_t k,
                     bool ta, bool tb, double alpha, double beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = ta ? a[p * m + i] : a[i * k + p];
        const double bv = tb ? b[j * k + p] : b[p * n + j];
        s += static_cast<long double>(av) * bv;
      }
      c[i * n + j] = static_cast<double>(alpha * s + (beta == 0 ? 0.0L : beta * static_cast<long double>(c[i * n + j])));
    }
}

class MatmulTransposeTest : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(MatmulTransposeTest, MatchesReference) {
  const auto [ta, tb] = GetParam();
  const int64_t m = 7, n = 5, k = 11;
  auto a = RandomVector<double>(m * k, 1), b = RandomVector<double>(k * n, 2);
  auto c0 = RandomVector<double>(m * n, 3);
  for (double beta : {0.0, 1.0, -0.6}) {
    const double alpha = 0.7;
    std::vector<double> want = c0, got = c0;
    ReferenceMatmul(want.data(), a.data(), b.data(), m, n, k, ta, tb, alpha, beta);
    Matmul(got.data(), a.data(), b.data(), m, n, k, ta, tb, alpha, beta);
    EXPECT_TRUE(AllClose(got, want, 1e-13, 1e-14, "f64 beta=" + std::to_string(beta)));

    auto af = Cast<float>(a), bf = Cast<float>(b), cf = Cast<float>(c0);
    Matmul(cf.data(), af.data(), bf.data(), m, n, k, ta, tb, static_cast<float>(alpha),
           static_cast<float>(beta));
    EXPECT_TRUE(AllClose(cf, want, 1e-5, 1e-5, "f32 beta=" + std::to_string(beta)));
  }
  // Defaults: alpha = 1, beta = 0 (c's old contents, even NaN, are ignored).
  std::vector<double> want(m * n), got(m * n, std::numeric_limits<double>::quiet_NaN());
  ReferenceMatmul(want.data(), a.data(), b.data(), m, n, k, ta, tb, 1.0, 0.0);
  Matmul(got.data(), a.data(), b.data(), m, n, k, ta, tb);
  EXPECT_TRUE(AllClose(got, want, 1e-13, 1e-14, "defaults"));
}

INSTANTIATE_TEST_SUITE_P(AllCombos, MatmulTransposeTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

TEST(MatmulTest, ZeroInnerDimensionScalesC) {
  const int64_t m = 3, n = 4;
  std::vector<double> a(1), b(1);
  auto c0 = RandomVector<double>(m * n, 4);
  auto c = c0;
  Matmul(c.data(), a.data(), b.data(), m, n, 0, false, false, 2.0, 0.5);
  for (int64_t i = 0; i < m * n; ++i) EXPECT_EQ(c[i], 0.5 * c0[i]);
  std::vector<float> cf(m * n, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> af(1), bf(1);
  Matmul(cf.data(), af.data(), bf.data(), m, n, 0, true, true);  // beta = 0: zero, even over NaN
  for (float x : cf) EXPECT_EQ(x, 0.f);
}

TEST(MatmulTest, BatchedWithPaddedStrides) {
  const int64_t batch = 3, m = 4, n = 6, k = 5;
  const int64_t sa = m * k + 3, sb = k * n + 1, sc = m * n + 7;
  auto a = RandomVector<double>(batch * sa, 5), b = RandomVector<double>(batch * sb, 6);
  auto c0 = RandomVector<double>(batch * sc, 7);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto want = c0, got = c0;
      for (int64_t i = 0; i < batch; ++i)
        ReferenceMatmul(want.data() + i * sc, a.data() + i * sa, b.data() + i * sb, m, n, k, ta, tb,
                        1.5, 1.0);
      BatchedMatmul(got.data(), a.data(), b.data(), batch, m, n, k, ta, tb, sa, sb, sc, 1.5, 1.0);
      EXPECT_TRUE(AllClose(got, want, 1e-13, 1e-14, "batched"));  // padding untouched too
    }
}

TEST(MatmulTest, LinearForwardAndBackward) {
  const int64_t n = 9, in = 13, out = 7;
  auto x = RandomVector<double>(n * in, 8), w = RandomVector<double>(out * in, 9);
  auto dy = RandomVector<double>(n * out, 10);

  std::vector<double> y_ref(n * out), y(n * out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t p = 0; p < in; ++p) s += x[i * in + p] * w[o * in + p];
      y_ref[i * out + o] = s;
    }
  LinearForward(y.data(), x.data(), w.data(), n, in, out);
  EXPECT_TRUE(AllClose(y, y_ref, 1e-13, 1e-14, "y"));

  std::vector<double> dx_ref(n * in, 0.0);
  const auto dw0 = RandomVector<double>(out * in, 11);
  auto dw_ref = dw0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t p = 0; p < in; ++p) {
        dx_ref[i * in + p] += dy[i * out + o] * w[o * in + p];
        dw_ref[o * in + p] += dy[i * out + o] * x[i * in + p];
      }
  std::vector<double> dx(n * in, 42.0);  // overwritten
  auto dw = dw0;                         // accumulated
  LinearBackward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out);
  EXPECT_TRUE(AllClose(dx, dx_ref, 1e-13, 1e-14, "dx"));
  EXPECT_TRUE(AllClose(dw, dw_ref, 1e-13, 1e-14, "dw"));

  // nullptr skips one of the two products.
  std::vector<double> dx2(n * in, 42.0);
  LinearBackward(dx2.data(), static_cast<double*>(nullptr), dy.data(), x.data(), w.data(), n, in, out);
  EXPECT_TRUE(AllClose(dx2, dx_ref, 1e-13, 1e-14, "dx only"));
  auto dw2 = dw0;
  LinearBackward(static_cast<double*>(nullptr), dw2.data(), dy.data(), x.data(), w.data(), n, in, out);
  EXPECT_TRUE(AllClose(dw2, dw_ref, 1e-13, 1e-14, "dw only"));

  // float vs double.
  auto xf = Cast<float>(x), wf = Cast<float>(w), dyf = Cast<float>(dy), dwf = Cast<float>(dw0);
  std::vector<float> yf(n * out), dxf(n * in);
  LinearForward(yf.data(), xf.data(), wf.data(), n, in, out);
  LinearBackward(dxf.data(), dwf.data(), dyf.data(), xf.data(), wf.data(), n, in, out);
  EXPECT_TRUE(AllClose(yf, y_ref, 1e-5, 1e-5, "f32 y"));
  EXPECT_TRUE(AllClose(dxf, dx_ref, 1e-5, 1e-5, "f32 dx"));
  EXPECT_TRUE(AllClose(dwf, dw_ref, 1e-5, 1e-5, "f32 dw"));
}

// With single-threaded BLAS (SetNumThreads), Matmul cuts C into panels run on the OpenMP threads.
// Each element is still one BLAS dot product over the full k, so results must be bitwise equal for
// any thread count: that is what keeps parameter gradients (beta = 1 accumulation over k = tokens)
// independent of the thread count. Shapes split rows (m >= n), columns (m < n), and a dW-like
// transposed product with a long k.
TEST(MatmulTest, OpenMpPanelsAreBitwiseThreadCountIndependent) {
  const int saved_omp = omp_get_max_threads(), saved_blas = openblas_get_num_threads();
  struct Shape {
    int64_t m, n, k;
  };
  for (const Shape& sh : {Shape{320, 208, 200}, Shape{72, 640, 300}, Shape{96, 256, 1030}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(::testing::Message() << sh.m << "x" << sh.n << "x" << sh.k << " ta=" << ta
                                          << " tb=" << tb);
        const int64_t m = sh.m, n = sh.n, k = sh.k;
        auto a = RandomVector<double>(m * k, 21), b = RandomVector<double>(k * n, 22);
        auto c0 = RandomVector<double>(m * n, 23);
        auto want = c0;
        ReferenceMatmul(want.data(), a.data(), b.data(), m, n, k, ta, tb, 0.5, 1.0);
        auto af = Cast<float>(a), bf = Cast<float>(b);
        std::vector<float> first;
        for (int threads : {1, 2, 3}) {
          SetNumThreads(threads);
          auto cf = Cast<float>(c0);
          Matmul(cf.data(), af.data(), bf.data(), m, n, k, ta, tb, 0.5f, 1.0f);
          EXPECT_TRUE(AllClose(cf, want, 1e-4, 1e-4, "f32 threads=" + std::to_string(threads)));
          if (first.empty()) {
            first = cf;
          } else {
            EXPECT_EQ(std::memcmp(cf.data(), first.data(), cf.size() * sizeof(float)), 0)
                << "threads=" << threads << " differs bitwise from 1 thread";
          }
          auto cd = c0;
          Matmul(cd.data(), a.data(), b.data(), m, n, k, ta, tb, 0.5, 1.0);
          EXPECT_TRUE(AllClose(cd, want, 1e-12, 1e-12, "f64 threads=" + std::to_string(threads)));
        }
      }
  }
  omp_set_num_threads(saved_omp);
  openblas_set_num_threads(saved_blas);
}

}  // namespace
}  // namespace moetrain::kernels
