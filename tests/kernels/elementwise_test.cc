// Element-wise helpers against plain loops, at a small size and one above the parallel threshold.
#include "kernels/elementwise.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::RandomVector;

template <typename T>
class ElementwiseTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ElementwiseTest, Types);

constexpr int64_t kSizes[] = {0, 1, 37, 65536 + 77};

TYPED_TEST(ElementwiseTest, FillCopyAddScale) {
  using T = TypeParam;
  for (int64_t n : kSizes) {
    auto a = RandomVector<T>(n, 1), b = RandomVector<T>(n, 2);
    std::vector<T> y(n);
    Fill(y.data(), T(2.5), n);
    for (T v : y) ASSERT_EQ(v, T(2.5));
    Copy(y.data(), a.data(), n);
    EXPECT_EQ(y, a);
    Add(y.data(), a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] + b[i]) << i;
    auto z = a;
    AddInPlace(z.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(z[i], a[i] + b[i]) << i;
    z = a;
    Scale(z.data(), T(-0.75), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(z[i], a[i] * T(-0.75)) << i;
  }
}

TYPED_TEST(ElementwiseTest, SumSquaresIsDoubleAndSequential) {
  using T = TypeParam;
  for (int64_t n : kSizes) {
    auto x = RandomVector<T>(n, 3);
    double want = 0;
    for (T v : x) want += static_cast<double>(v) * static_cast<double>(v);
    EXPECT_EQ(SumSquares(x.data(), n), want) << n;  // same order, same double arithmetic: exact
  }
  // Float inputs whose squares overflow float still sum fine in double.
  std::vector<T> big = {T(std::ldexp(1.0, 100)), T(-std::ldexp(1.0, 100))};  // exact in float
  EXPECT_EQ(SumSquares(big.data(), 2), std::ldexp(1.0, 201));
}

TYPED_TEST(ElementwiseTest, AllFinite) {
  using T = TypeParam;
  auto x = RandomVector<T>(100, 4);
  EXPECT_TRUE(AllFinite(x.data(), 100));
  EXPECT_TRUE(AllFinite(x.data(), 0));
  x[57] = std::numeric_limits<T>::quiet_NaN();
  EXPECT_FALSE(AllFinite(x.data(), 100));
  EXPECT_TRUE(AllFinite(x.data(), 57));
  x[57] = -std::numeric_limits<T>::infinity();
  EXPECT_FALSE(AllFinite(x.data(), 100));
  x[57] = std::numeric_limits<T>::max();
  EXPECT_TRUE(AllFinite(x.data(), 100));
}

}  // namespace
}  // namespace moetrain::kernels
