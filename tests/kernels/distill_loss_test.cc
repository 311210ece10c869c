// Distillation loss head against a long-double reference (probabilities formed explicitly, the
// textbook definition), its gradient against central finite differences, stability with large
// logits, alpha = 0 bitwise equal to plain cross-entropy, float vs double.
#include "kernels/distill_loss.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cross_entropy.h"
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

// softmax(z / tau) of one row in long double, by its definition.
std::vector<long double> ReferenceSoftmax(const double* z, int64_t v, double tau) {
  long double m = z[0] / tau;
  for (int64_t j = 1; j < v; ++j) m = std::max<long double>(m, z[j] / tau);
  std::vector<long double> p(v);
  long double s = 0;
  for (int64_t j = 0; j < v; ++j) s += p[j] = std::exp(static_cast<long double>(z[j]) / tau - m);
  for (auto& x : p) x /= s;
  return p;
}

// Per row: alpha tau^2 KL(p_t || p_s) + (1 - alpha) (-log softmax(z_s)[target]); 0 when ignored.
std::vector<double> ReferenceLoss(const std::vector<double>& zs, const std::vector<double>& zt,
                                  const std::vector<int32_t>& tgt, int64_t v, double alpha,
                                  double tau, std::vector<double>* kl_out) {
  const int64_t n = static_cast<int64_t>(tgt.size());
  std::vector<double> loss(n, 0.0);
  kl_out->assign(n, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    if (tgt[t] == kIgnore) continue;
    auto ps = ReferenceSoftmax(&zs[t * v], v, tau), pt = ReferenceSoftmax(&zt[t * v], v, tau);
    auto p1 = ReferenceSoftmax(&zs[t * v], v, 1.0);
    long double kl = 0;
    for (int64_t j = 0; j < v; ++j)
      if (pt[j] > 0) kl += pt[j] * std::log(pt[j] / ps[j]);
    (*kl_out)[t] = static_cast<double>(kl);
    loss[t] = static_cast<double>(alpha * tau * tau * kl - (1 - alpha) * std::log(p1[tgt[t]]));
  }
  return loss;
}

std::vector<int32_t> TargetsWithIgnored(int64_t n, int32_t v, uint64_t seed) {
  auto t = RandomInts(n, 0, v, seed);
  t[1] = t[n - 1] = kIgnore;
  return t;
}

TEST(DistillLossTest, ForwardMatchesReference) {
  const int64_t n = 17, v = 131;
  auto zs = RandomVector<double>(n * v, 1, 3.0), zt = RandomVector<double>(n * v, 2, 3.0);
  auto tgt = TargetsWithIgnored(n, v, 3);
  for (double tau : {1.0, 2.0, 0.5}) {
    for (double alpha : {0.0, 0.7, 1.0}) {
      std::vector<double> kl_ref;
      auto ref = ReferenceLoss(zs, zt, tgt, v, alpha, tau, &kl_ref);
      std::vector<double> loss(n, 7.0), ce(n), kl(n, 7.0), lse(n);
      EXPECT_EQ(DistillLossForward(loss.data(), ce.data(), kl.data(), lse.data(), zs.data(),
                                   zt.data(), tgt.data(), n, v, alpha, tau, kIgnore),
                n - 2);
      EXPECT_TRUE(AllClose(kl, kl_ref, 1e-11, 1e-14, "f64 kl"));
      EXPECT_TRUE(AllClose(loss, ref, 1e-12, 1e-14, "f64 loss"));
      for (int64_t t : {1, 16}) EXPECT_EQ(loss[t], 0.0);

      auto zsf = Cast<float>(zs), ztf = Cast<float>(zt);
      std::vector<float> lossf(n), cef(n), klf(n), lsef(n);
      DistillLossForward(lossf.data(), cef.data(), klf.data(), lsef.data(), zsf.data(), ztf.data(),
                         tgt.data(), n, v, alpha, tau, kIgnore);
      EXPECT_TRUE(AllClose(lossf, ref, 1e-4, 1e-5, "f32 vs reference"));
    }
  }
  // KL of a distribution to itself is 0; KL is never negative.
  std::vector<double> kl(n);
  DistillKlForward(kl.data(), zs.data(), zs.data(), tgt.data(), n, v, 2.0, kIgnore);
  for (double k : kl) EXPECT_NEAR(k, 0.0, 1e-14);
}

TEST(DistillLossTest, LargeLogitsStayFinite) {
  const int64_t n = 4, v = 50;
  auto zs = RandomVector<double>(n * v, 4, 1.0), zt = RandomVector<double>(n * v, 5, 1.0);
  for (int64_t i = 0; i < n * v; ++i) {
    zs[i] *= 800.0;  // exp(800) overflows a double: only shifted forms survive
    zt[i] *= 900.0;
  }
  auto tgt = RandomInts(n, 0, v, 6);
  std::vector<double> kl_ref;
  auto ref = ReferenceLoss(zs, zt, tgt, v, 0.7, 2.0, &kl_ref);
  std::vector<double> loss(n), ce(n), kl(n), lse(n), dz(n * v);
  DistillLossForward(loss.data(), ce.data(), kl.data(), lse.data(), zs.data(), zt.data(),
                     tgt.data(), n, v, 0.7, 2.0, kIgnore);
  EXPECT_TRUE(AllClose(loss, ref, 1e-9, 1e-9, "large logits"));
  DistillLossBackward(dz.data(), zs.data(), lse.data(), zt.data(), tgt.data(), 1.0, n, v, 0.7, 2.0,
                      kIgnore);
  for (double g : dz) ASSERT_TRUE(std::isfinite(g));
}

TEST(DistillLossTest, MeanGradientMatchesFiniteDifferences) {
  const int64_t n = 7, v = 29;
  auto zs = RandomVector<double>(n * v, 7, 2.0), zt = RandomVector<double>(n * v, 8, 2.0);
  auto tgt = TargetsWithIgnored(n, v, 9);
  const int64_t valid = n - 2;
  for (double tau : {1.0, 2.0}) {
    const double alpha = 0.7;
    std::vector<double> loss(n), ce(n), kl(n), lse(n);
    auto mean_loss = [&] {
      DistillLossForward(loss.data(), ce.data(), kl.data(), lse.data(), zs.data(), zt.data(),
                         tgt.data(), n, v, alpha, tau, kIgnore);
      double s = 0;
      for (double l : loss) s += l;
      return s / static_cast<double>(valid);
    };
    auto fd = FiniteDifferenceGradient(zs, 1e-5, mean_loss);
    mean_loss();  // lse of the unperturbed logits
    std::vector<double> dz(n * v, 5.0);  // overwritten
    DistillLossBackward(dz.data(), zs.data(), lse.data(), zt.data(), tgt.data(), 1.0 / valid, n, v,
                        alpha, tau, kIgnore);
    const double err = RelativeL2Error(dz, fd);
    std::printf("  distill (tau %.1f) mean gradient vs FD: rel L2 error %.3g\n", tau, err);
    EXPECT_LT(err, 1e-6);
    for (int64_t j = 0; j < v; ++j) ASSERT_EQ(dz[1 * v + j], 0.0) << "ignored row";
    // float agrees with double.
    auto zsf = Cast<float>(zs), ztf = Cast<float>(zt);
    std::vector<float> lf(n), cf(n), kf(n), lsef(n), dzf(n * v);
    DistillLossForward(lf.data(), cf.data(), kf.data(), lsef.data(), zsf.data(), ztf.data(),
                       tgt.data(), n, v, alpha, tau, kIgnore);
    DistillLossBackward(dzf.data(), zsf.data(), lsef.data(), ztf.data(), tgt.data(),
                        static_cast<float>(1.0 / valid), n, v, alpha, tau, kIgnore);
    EXPECT_LT(RelativeL2Error(dzf, dz), 1e-5);
  }
}

// alpha = 0 is plain cross-entropy, bit for bit (what `mode: distill` with alpha 0 relies on).
TEST(DistillLossTest, AlphaZeroIsBitwiseCrossEntropy) {
  const int64_t n = 11, v = 97;
  auto zs = Cast<float>(RandomVector<double>(n * v, 10, 3.0));
  auto zt = Cast<float>(RandomVector<double>(n * v, 11, 3.0));
  auto tgt = TargetsWithIgnored(n, v, 12);
  std::vector<float> loss(n), ce(n), kl(n), lse(n), ce_ref(n), lse_ref(n);
  DistillLossForward(loss.data(), ce.data(), kl.data(), lse.data(), zs.data(), zt.data(),
                     tgt.data(), n, v, 0.0, 2.0, kIgnore);
  CrossEntropyForward(ce_ref.data(), lse_ref.data(), zs.data(), tgt.data(), n, v, kIgnore);
  const float dloss = 1.0f / 9;
  std::vector<float> dz(n * v), dz_ref(n * v);
  DistillLossBackward(dz.data(), zs.data(), lse.data(), zt.data(), tgt.data(), dloss, n, v, 0.0,
                      2.0, kIgnore);
  CrossEntropyBackward(dz_ref.data(), zs.data(), lse_ref.data(), tgt.data(), dloss, n, v, kIgnore);
  for (int64_t t = 0; t < n; ++t) ASSERT_EQ(loss[t], ce_ref[t]) << "row " << t;
  for (int64_t i = 0; i < n * v; ++i) ASSERT_EQ(dz[i], dz_ref[i]) << "element " << i;
}

}  // namespace
}  // namespace moetrain::kernels
