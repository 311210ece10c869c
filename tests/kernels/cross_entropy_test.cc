// Cross-entropy against a float64 (long double) reference, with ignored rows, an all-ignored batch,
// large logits (stability), the mean-reduction gradient against central differences, float vs double.
#include "kernels/cross_entropy.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::FiniteDifferenceGradient;
using ::moetrain::testing::RandomInts;
using ::moetrain::testing::RandomVector;
using ::moetrain::testing::RelativeL2Error;

constexpr int32_t kIgnore = -100;

// Row log-sum-exp in long double (shifted by the row max so it also works for large logits).
double ReferenceLse(const double* z, int64_t v) {
  long double m = z[0];
  for (int64_t j = 1; j < v; ++j) m = std::max<long double>(m, z[j]);
  long double s = 0;
  for (int64_t j = 0; j < v; ++j) s += std::exp(static_cast<long double>(z[j]) - m);
  return static_cast<double>(m + std::log(s));
}

std::vector<int32_t> TargetsWithIgnored(int64_t n, int32_t v, uint64_t seed) {
  auto t = RandomInts(n, 0, v, seed);
  t[1] = t[4] = t[n - 1] = kIgnore;
  t[2] = 0;
  t[3] = v - 1;
  return t;
}

TEST(CrossEntropyTest, ForwardMatchesReference) {
  const int64_t n = 23, v = 251;
  auto logits = RandomVector<double>(n * v, 1, 3.0);
  auto tgt = TargetsWithIgnored(n, v, 2);
  std::vector<double> loss_ref(n), lse_ref(n);
  for (int64_t t = 0; t < n; ++t) {
    lse_ref[t] = ReferenceLse(&logits[t * v], v);
    loss_ref[t] = tgt[t] == kIgnore ? 0.0 : lse_ref[t] - logits[t * v + tgt[t]];
  }

  std::vector<double> loss(n, 9.0), lse(n);
  EXPECT_EQ(CrossEntropyForward(loss.data(), lse.data(), logits.data(), tgt.data(), n, v, kIgnore), n - 3);
  EXPECT_TRUE(AllClose(lse, lse_ref, 1e-14, 0, "f64 lse"));
  EXPECT_TRUE(AllClose(loss, loss_ref, 1e-13, 1e-14, "f64 loss"));
  for (int64_t t : {1, 4, 22}) EXPECT_EQ(loss[t], 0.0);

  auto lf = Cast<float>(logits);
  std::vector<float> lossf(n), lsef(n);
  EXPECT_EQ(CrossEntropyForward(lossf.data(), lsef.data(), lf.data(), tgt.data(), n, v, kIgnore), n - 3);
  EXPECT_TRUE(AllClose(lossf, loss, 1e-5, 1e-6, "f32 vs f64 loss"));
  std::printf("  cross-entropy loss rel L2: f64 %.3g, f32 %.3g\n", RelativeL2Error(loss, loss_ref),
              RelativeL2Error(lossf, loss_ref));
}

TEST(CrossEntropyTest, LargeLogitsAreStable) {
  // A shift of 1e4 would overflow exp in float (and 1e3 in double) without the max subtraction.
  const int64_t n = 5, v = 33;
  auto base = RandomVector<double>(n * v, 3);
  auto shifted = base;
  for (auto& z : shifted) z += 1e4;
  auto tgt = RandomInts(n, 0, v, 4);
  std::vector<double> loss0(n), loss1(n), lse0(n), lse1(n);
  CrossEntropyForward(loss0.data(), lse0.data(), base.data(), tgt.data(), n, v, kIgnore);
  CrossEntropyForward(loss1.data(), lse1.data(), shifted.data(), tgt.data(), n, v, kIgnore);
  EXPECT_TRUE(AllClose(loss1, loss0, 1e-9, 1e-9, "shift invariance f64"));
  auto sf = Cast<float>(shifted);
  std::vector<float> lossf(n), lsef(n), df(n * v);
  CrossEntropyForward(lossf.data(), lsef.data(), sf.data(), tgt.data(), n, v, kIgnore);
  // float logits near 1e4 carry ~1e-3 absolute rounding, so compare loosely; the point is finiteness.
  EXPECT_TRUE(AllClose(lossf, loss0, 0, 5e-3, "shift invariance f32"));
  CrossEntropyBackward(df.data(), sf.data(), lsef.data(), tgt.data(), 1.0f, n, v, kIgnore);
  for (float g : df) ASSERT_TRUE(std::isfinite(g));
}

TEST(CrossEntropyTest, MeanGradientMatchesFiniteDifferences) {
  const int64_t n = 9, v = 37;
  auto logits = RandomVector<double>(n * v, 5, 2.0);
  auto tgt = TargetsWithIgnored(n, v, 6);
  std::vector<double> loss(n), lse(n);
  const int64_t valid = CrossEntropyForward(loss.data(), lse.data(), logits.data(), tgt.data(), n, v, kIgnore);
  ASSERT_EQ(valid, n - 3);
  auto mean_loss = [&] {
    CrossEntropyForward(loss.data(), lse.data(), logits.data(), tgt.data(), n, v, kIgnore);
    double s = 0;
    for (double l : loss) s += l;
    return s / static_cast<double>(valid);
  };
  auto fd = FiniteDifferenceGradient(logits, 1e-5, mean_loss);
  mean_loss();  // restore lse for the unperturbed logits
  std::vector<double> dlogits(n * v, 5.0);  // overwritten
  CrossEntropyBackward(dlogits.data(), logits.data(), lse.data(), tgt.data(), 1.0 / valid, n, v, kIgnore);
  const double err = RelativeL2Error(dlogits, fd);
  std::printf("  cross-entropy mean gradient vs FD: rel L2 error %.3g\n", err);
  EXPECT_LT(err, 1e-6);
  for (int64_t t : {1, 4, 8})
    for (int64_t j = 0; j < v; ++j) ASSERT_EQ(dlogits[t * v + j], 0.0) << "ignored row " << t;
  // Each valid row's gradient sums to zero (softmax minus one-hot).
  for (int64_t t = 0; t < n; ++t) {
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += dlogits[t * v + j];
    EXPECT_NEAR(s, 0.0, 1e-15);
  }

  auto lf = Cast<float>(logits);
  std::vector<float> lossf(n), lsef(n), df(n * v);
  CrossEntropyForward(lossf.data(), lsef.data(), lf.data(), tgt.data(), n, v, kIgnore);
  CrossEntropyBackward(df.data(), lf.data(), lsef.data(), tgt.data(), 1.0f / valid, n, v, kIgnore);
  EXPECT_TRUE(AllClose(df, dlogits, 1e-5, 1e-7, "f32 vs f64 dlogits"));
}

TEST(CrossEntropyTest, AllIgnoredBatch) {
  const int64_t n = 4, v = 7;
  auto logits = RandomVector<float>(n * v, 7);
  std::vector<int32_t> tgt(n, kIgnore);
  std::vector<float> loss(n, 3.f), lse(n), d(n * v, 3.f);
  EXPECT_EQ(CrossEntropyForward(loss.data(), lse.data(), logits.data(), tgt.data(), n, v, kIgnore), 0);
  for (float l : loss) EXPECT_EQ(l, 0.f);
  CrossEntropyBackward(d.data(), logits.data(), lse.data(), tgt.data(), 1.f, n, v, kIgnore);
  for (float g : d) EXPECT_EQ(g, 0.f);
}

TEST(CrossEntropyTest, ParallelPathMatchesReference) {
  const int64_t n = 77, v = 251;  // n * v takes the parallel path
  auto logits = RandomVector<double>(n * v, 8);
  auto tgt = TargetsWithIgnored(n, v, 9);
  std::vector<double> loss(n), lse(n), want(n);
  CrossEntropyForward(loss.data(), lse.data(), logits.data(), tgt.data(), n, v, kIgnore);
  for (int64_t t = 0; t < n; ++t)
    want[t] = tgt[t] == kIgnore ? 0.0 : ReferenceLse(&logits[t * v], v) - logits[t * v + tgt[t]];
  EXPECT_TRUE(AllClose(loss, want, 1e-13, 1e-14, "f64 loss (parallel)"));
}

TEST(CrossEntropyDeathTest, OutOfRangeTargetAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int64_t n = 2, v = 5;
  std::vector<float> logits(n * v), loss(n), lse(n), d(n * v);
  std::vector<int32_t> tgt = {1, 5};
  EXPECT_DEATH(CrossEntropyForward(loss.data(), lse.data(), logits.data(), tgt.data(), n, v, kIgnore),
               "target 5");
  tgt = {-1, 0};  // negative but not the ignore index
  EXPECT_DEATH(CrossEntropyBackward(d.data(), logits.data(), lse.data(), tgt.data(), 1.f, n, v, kIgnore),
               "target -1");
}

}  // namespace
}  // namespace moetrain::kernels
