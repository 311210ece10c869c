// Router kernels against straightforward float64 references: scores, top-k (bias, ties), weights,
// aux statistics, z-loss, and the backward pass against central finite differences.
#include "kernels/router.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::CentralDifference;
using ::moetrain::testing::Dot;
using ::moetrain::testing::RandomVector;

std::string Name(const RouterShape& s, int64_t n) {
  return std::string(s.scoring == RouterScoring::kSoftmax ? "softmax" : "sigmoid") +
         (s.renormalize ? " renorm" : " raw") + " N=" + std::to_string(n) +
         " E=" + std::to_string(s.num_experts) + " k=" + std::to_string(s.top_k);
}

// ---- float64 reference ------------------------------------------------------------------------

std::vector<double> RefScores(const std::vector<double>& logits, int64_t n, int64_t e,
                              RouterScoring scoring) {
  std::vector<double> s(logits.size());
  for (int64_t t = 0; t < n; ++t) {
    const double* l = &logits[t * e];
    if (scoring == RouterScoring::kSoftmax) {
      const double m = *std::max_element(l, l + e);
      double sum = 0;
      for (int64_t i = 0; i < e; ++i) sum += std::exp(l[i] - m);
      for (int64_t i = 0; i < e; ++i) s[t * e + i] = std::exp(l[i] - m) / sum;
    } else {
      for (int64_t i = 0; i < e; ++i) s[t * e + i] = 1.0 / (1.0 + std::exp(-l[i]));
    }
  }
  return s;
}

// Top-k by (score + bias) descending, ties to the lower index, via a stable sort.
std::vector<int32_t> RefTopK(const std::vector<double>& scores, const float* bias, int64_t n,
                             int64_t e, int64_t k) {
  std::vector<int32_t> idx(n * k);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<int32_t> order(e);
    std::iota(order.begin(), order.end(), 0);
    auto key = [&](int32_t i) { return scores[t * e + i] + (bias ? double(bias[i]) : 0.0); };
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return key(a) > key(b); });
    for (int64_t j = 0; j < k; ++j) idx[t * k + j] = order[j];
  }
  return idx;
}

std::vector<double> RefWeights(const std::vector<double>& scores, const std::vector<int32_t>& idx,
                               int64_t n, int64_t e, int64_t k, bool renormalize) {
  std::vector<double> w(n * k);
  for (int64_t t = 0; t < n; ++t) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += scores[t * e + idx[t * k + j]];
    for (int64_t j = 0; j < k; ++j)
      w[t * k + j] = scores[t * e + idx[t * k + j]] / (renormalize ? sum : 1.0);
  }
  return w;
}

// p_te: s (softmax) or s / sum(s) (sigmoid).
std::vector<double> RefAuxProbs(const std::vector<double>& scores, int64_t n, int64_t e,
                                RouterScoring scoring) {
  std::vector<double> p = scores;
  if (scoring == RouterScoring::kSigmoid) {
    for (int64_t t = 0; t < n; ++t) {
      double sum = 0;
      for (int64_t i = 0; i < e; ++i) sum += scores[t * e + i];
      for (int64_t i = 0; i < e; ++i) p[t * e + i] = scores[t * e + i] / sum;
    }
  }
  return p;
}

double RefLse(const double* l, int64_t e) {
  const double m = *std::max_element(l, l + e);
  double sum = 0;
  for (int64_t i = 0; i < e; ++i) sum += std::exp(l[i] - m);
  return m + std::log(sum);
}

// ---- forward ----------------------------------------------------------------------------------

template <typename T>
void CheckForward(int64_t n, const RouterShape& shape, bool with_bias, uint64_t seed) {
  const int64_t e = shape.num_experts, k = shape.top_k;
  SCOPED_TRACE(Name(shape, n) + (with_bias ? " bias" : "") +
               (sizeof(T) == 4 ? " float" : " double"));
  const auto logits = RandomVector<T>(n * e, seed, 2.0);
  const auto bias_d = RandomVector<float>(e, seed + 1, 0.3);
  const float* bias = with_bias ? bias_d.data() : nullptr;
  std::vector<T> scores(n * e), weight(n * k);
  std::vector<int32_t> idx(n * k, -7);
  RouterForward(scores.data(), idx.data(), weight.data(), logits.data(), bias, n, shape);

  const auto ref_scores = RefScores(Cast<double>(logits), n, e, shape.scoring);
  const double tol = sizeof(T) == 4 ? 2e-6 : 1e-14;
  EXPECT_TRUE(AllClose(scores, ref_scores, tol, tol * 1e-3, "scores"));
  // The selection is checked on the kernel's own scores, so float rounding cannot flip a near tie.
  const auto ref_idx = RefTopK(Cast<double>(scores), bias, n, e, k);
  EXPECT_EQ(idx, ref_idx);
  const auto ref_w = RefWeights(ref_scores, ref_idx, n, e, k, shape.renormalize);
  EXPECT_TRUE(AllClose(weight, ref_w, 2 * tol, tol * 1e-3, "weights"));
}

TEST(RouterForwardTest, MatchesReferenceOnAwkwardSizes) {
  uint64_t seed = 100;
  for (auto scoring : {RouterScoring::kSoftmax, RouterScoring::kSigmoid})
    for (bool renorm : {true, false})
      for (int64_t n : {1, 7, 37})
        for (int64_t e : {1, 3, 8})
          for (int64_t k : {int64_t{1}, int64_t{2}, e}) {
            if (k > e) continue;
            RouterShape shape{e, k, scoring, renorm};
            for (bool bias : {false, true}) {
              CheckForward<float>(n, shape, bias, ++seed);
              CheckForward<double>(n, shape, bias, ++seed);
            }
          }
}

TEST(RouterForwardTest, TiesGoToLowerIndex) {
  // Equal logits give bitwise-equal scores; the order must be by index.
  for (auto scoring : {RouterScoring::kSoftmax, RouterScoring::kSigmoid}) {
    RouterShape shape{5, 3, scoring, true};
    const std::vector<double> logits = {0.5, 0.5, 0.5, 0.5, 0.5,   // all tied
                                        1.0, 3.0, 3.0, 0.0, 3.0};  // three tied at the top
    std::vector<double> scores(10), w(6);
    std::vector<int32_t> idx(6);
    RouterForward(scores.data(), idx.data(), w.data(), logits.data(), nullptr, 2, shape);
    EXPECT_EQ(idx, (std::vector<int32_t>{0, 1, 2, 1, 2, 4}));
    for (double x : w) EXPECT_NEAR(x, 1.0 / 3.0, 1e-15);
  }
  // A tie created by the bias: equal scores, bias {0, .5, .5, 0} -> 1, 2, then 0 before 3.
  RouterShape shape{4, 3, RouterScoring::kSigmoid, false};
  const std::vector<float> logits = {0.25f, 0.25f, 0.25f, 0.25f};
  const std::vector<float> bias = {0.0f, 0.5f, 0.5f, 0.0f};
  std::vector<float> scores(4), w(3);
  std::vector<int32_t> idx(3);
  RouterForward(scores.data(), idx.data(), w.data(), logits.data(), bias.data(), 1, shape);
  EXPECT_EQ(idx, (std::vector<int32_t>{1, 2, 0}));
}

TEST(RouterForwardTest, BiasChangesSelectionButNotWeights) {
  for (auto scoring : {RouterScoring::kSoftmax, RouterScoring::kSigmoid})
    for (bool renorm : {true, false}) {
      RouterShape shape{4, 2, scoring, renorm};
      SCOPED_TRACE(Name(shape, 2));
      const std::vector<double> logits = {2.0,  1.0, 0.0, -1.0,  //
                                          -1.0, 0.5, 3.0, 1.5};
      const std::vector<float> bias = {0.0f, 0.0f, 1.0f, 1.2f};  // pushes experts 2 and 3 up
      std::vector<double> s0(8), w0(4), s1(8), w1(4);
      std::vector<int32_t> i0(4), i1(4);
      RouterForward(s0.data(), i0.data(), w0.data(), logits.data(), nullptr, 2, shape);
      RouterForward(s1.data(), i1.data(), w1.data(), logits.data(), bias.data(), 2, shape);
      EXPECT_EQ(s0, s1);  // scores never see the bias
      EXPECT_EQ(i0, (std::vector<int32_t>{0, 1, 2, 3}));
      EXPECT_EQ(i1, RefTopK(s1, bias.data(), 2, 4, 2));
      EXPECT_NE(i0, i1);
      for (int t = 0; t < 2; ++t) {
        const double a = s1[t * 4 + i1[t * 2]], b = s1[t * 4 + i1[t * 2 + 1]];
        const double d = renorm ? a + b : 1.0;
        EXPECT_DOUBLE_EQ(w1[t * 2], a / d);
        EXPECT_DOUBLE_EQ(w1[t * 2 + 1], b / d);
        if (!renorm) {  // weights ARE the unbiased scores, bitwise
          EXPECT_EQ(w1[t * 2], a);
          EXPECT_EQ(w1[t * 2 + 1], b);
        }
      }
    }
}

TEST(RouterForwardTest, SoftmaxAndSigmoidAreStableForHugeLogits) {
  for (auto scoring : {RouterScoring::kSoftmax, RouterScoring::kSigmoid}) {
    RouterShape shape{3, 2, scoring, true};
    const std::vector<float> logits = {1000.f, 999.f, -1000.f, -800.f, -801.f, -1000.f};
    std::vector<float> scores(6), w(4);
    std::vector<int32_t> idx(4);
    RouterForward(scores.data(), idx.data(), w.data(), logits.data(), nullptr, 2, shape);
    for (float x : scores) EXPECT_TRUE(std::isfinite(x));
    for (float x : w) EXPECT_TRUE(std::isfinite(x));
    EXPECT_EQ(idx, (std::vector<int32_t>{0, 1, 0, 1}));
    if (scoring == RouterScoring::kSoftmax) {
      const double r = 1.0 / (1.0 + std::exp(-1.0));
      EXPECT_NEAR(scores[0], r, 1e-6);
      EXPECT_NEAR(scores[4], 1 - r, 1e-6);
      EXPECT_NEAR(w[2], r, 1e-6);
    }
    EXPECT_NEAR(RouterZLossSum(logits.data(), 2, shape),
                std::pow(RefLse(Cast<double>(logits).data(), 3), 2) +
                    std::pow(RefLse(Cast<double>(logits).data() + 3, 3), 2),
                1e-3);
  }
}

// ---- statistics and z-loss --------------------------------------------------------------------

template <typename T>
void CheckStats(int64_t n, const RouterShape& shape, uint64_t seed) {
  const int64_t e = shape.num_experts, k = shape.top_k;
  SCOPED_TRACE(Name(shape, n));
  const auto logits = RandomVector<T>(n * e, seed, 1.5);
  std::vector<T> scores(n * e), w(n * k);
  std::vector<int32_t> idx(n * k);
  RouterForward(scores.data(), idx.data(), w.data(), logits.data(), nullptr, n, shape);
  // Accumulate twice onto non-zero starting values to check +=.
  std::vector<double> counts(e, 1.0), prob(e, 0.5);
  RouterAccumulateStats(counts.data(), prob.data(), scores.data(), idx.data(), n, shape);
  RouterAccumulateStats(counts.data(), prob.data(), scores.data(), idx.data(), n, shape);
  std::vector<double> ref_counts(e, 1.0), ref_prob(e, 0.5);
  const auto p = RefAuxProbs(Cast<double>(scores), n, e, shape.scoring);
  for (int rep = 0; rep < 2; ++rep)
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < k; ++j) ref_counts[idx[t * k + j]] += 1;
      for (int64_t i = 0; i < e; ++i) ref_prob[i] += p[t * e + i];
    }
  EXPECT_EQ(counts, ref_counts);
  EXPECT_TRUE(AllClose(prob, ref_prob, 1e-13, 1e-13, "prob_sum"));

  double ref_z = 0;
  const auto ld = Cast<double>(logits);
  for (int64_t t = 0; t < n; ++t) ref_z += std::pow(RefLse(&ld[t * e], e), 2);
  const double z = RouterZLossSum(logits.data(), n, shape);
  EXPECT_NEAR(z, ref_z, 1e-12 * std::max(1.0, std::fabs(ref_z)));
}

TEST(RouterStatsTest, CountsProbSumsAndZLossMatchReference) {
  uint64_t seed = 900;
  for (auto scoring : {RouterScoring::kSoftmax, RouterScoring::kSigmoid})
    for (int64_t n : {0, 1, 7, 37, 130})
      for (int64_t e : {1, 3, 8})
        for (int64_t k : {int64_t{1}, int64_t{2}, e}) {
          if (k > e) continue;
          CheckStats<float>(n, RouterShape{e, k, scoring, true}, ++seed);
          CheckStats<double>(n, RouterShape{e, k, scoring, false}, ++seed);
        }
}

// ---- backward against finite differences ------------------------------------------------------

// Logits whose scores + bias have gaps of at least ~0.3 * slope between consecutive ranks, so a
// perturbation of 1e-5 never changes the top-k.
std::vector<double> GappedLogits(int64_t n, int64_t e, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> jitter(-0.05, 0.05);
  std::vector<double> l(n * e);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<int> perm(e);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t i = 0; i < e; ++i) l[t * e + i] = 0.6 * (perm[i] - e / 2.0) + jitter(rng);
  }
  return l;
}

struct BackwardCase {
  int64_t n;
  RouterShape shape;
  bool use_weights, use_aux, use_z, use_bias;
};

// L(l) = <R, w(l)> + sum_e a_e sum_t p_te(l) + z sum_t lse_t(l)^2 in float64, with the selection
// fixed to `idx` (checked not to change).
double RefLoss(const std::vector<double>& logits, const BackwardCase& c, const float* bias,
               const std::vector<int32_t>& idx, const std::vector<double>& r,
               const std::vector<double>& aux, double z) {
  const int64_t n = c.n, e = c.shape.num_experts, k = c.shape.top_k;
  const auto s = RefScores(logits, n, e, c.shape.scoring);
  EXPECT_EQ(RefTopK(s, bias, n, e, k), idx) << "finite-difference step changed the top-k";
  const auto w = RefWeights(s, idx, n, e, k, c.shape.renormalize);
  const auto p = RefAuxProbs(s, n, e, c.shape.scoring);
  double loss = 0;
  if (c.use_weights)
    for (size_t i = 0; i < w.size(); ++i) loss += r[i] * w[i];
  if (c.use_aux)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < e; ++i) loss += aux[i] * p[t * e + i];
  if (c.use_z)
    for (int64_t t = 0; t < n; ++t) loss += z * std::pow(RefLse(&logits[t * e], e), 2);
  return loss;
}

double worst_backward_rel_err = 0, worst_float_rel_err = 0;

double Norm(const std::vector<double>& v) { return std::sqrt(Dot(v, v)); }

std::vector<double> Diff(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

void CheckBackward(const BackwardCase& c, uint64_t seed) {
  const int64_t n = c.n, e = c.shape.num_experts, k = c.shape.top_k;
  const std::string name = Name(c.shape, n) + (c.use_weights ? " +w" : "") +
                           (c.use_aux ? " +aux" : "") + (c.use_z ? " +z" : "") +
                           (c.use_bias ? " +bias" : "");
  SCOPED_TRACE(name);
  auto logits = GappedLogits(n, e, seed);
  // Bias: a multiple of the score gap structure would risk near ties, so use +-0.02 jitter only.
  const auto bias_v = RandomVector<float>(e, seed + 1, 0.02);
  const float* bias = c.use_bias ? bias_v.data() : nullptr;
  const auto r = RandomVector<double>(n * k, seed + 2);
  const auto aux = RandomVector<double>(e, seed + 3);
  const double z = 0.37;

  // Without the weight term, dweight is zero (the kernel has no "null dweight").
  const std::vector<double> dweight = c.use_weights ? r : std::vector<double>(n * k, 0.0);

  std::vector<double> scores(n * e), w(n * k), dlogits(n * e, 123.0);  // 123: overwrite check
  std::vector<int32_t> idx(n * k);
  RouterForward(scores.data(), idx.data(), w.data(), logits.data(), bias, n, c.shape);
  RouterBackward(dlogits.data(), dweight.data(), c.use_aux ? aux.data() : nullptr,
                 c.use_z ? z : 0.0, logits.data(), scores.data(), idx.data(), w.data(), n, c.shape);

  // Margin between the k-th and (k+1)-th key, to be sure the selection is stable under h.
  if (k < e) {
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> keys(e);
      for (int64_t i = 0; i < e; ++i) keys[i] = scores[t * e + i] + (bias ? bias[i] : 0.0f);
      std::sort(keys.rbegin(), keys.rend());
      ASSERT_GT(keys[k - 1] - keys[k], 1e-3) << "test logits too close to a tie";
    }
  }

  std::vector<double> fd(n * e);
  for (size_t i = 0; i < fd.size(); ++i)
    fd[i] = CentralDifference(logits, i, 1e-5,
                              [&] { return RefLoss(logits, c, bias, idx, r, aux, z); });
  // Some cases have an identically zero gradient (E = 1 with sigmoid aux p = s / s, k = 1 with
  // renormalised weights); there the norm-wise error is measured against a floor of 1e-6.
  const double rel = Norm(Diff(dlogits, fd)) / std::max(Norm(fd), 1e-6);
  worst_backward_rel_err = std::max(worst_backward_rel_err, rel);
  EXPECT_LT(rel, 1e-6) << name;
  EXPECT_TRUE(AllClose(dlogits, fd, 1e-6, 1e-8, "dlogits"));

  // float kernels against the double ones (same inputs, rounded).
  const auto lf = Cast<float>(logits);
  std::vector<float> sf(n * e), wf(n * k), df(n * e);
  std::vector<int32_t> idxf(n * k);
  RouterForward(sf.data(), idxf.data(), wf.data(), lf.data(), bias, n, c.shape);
  ASSERT_EQ(idxf, idx);
  const auto rf = Cast<float>(dweight);
  RouterBackward(df.data(), rf.data(), c.use_aux ? aux.data() : nullptr, c.use_z ? z : 0.0,
                 lf.data(), sf.data(), idxf.data(), wf.data(), n, c.shape);
  const double rel_float = Norm(Diff(Cast<double>(df), dlogits)) / std::max(Norm(dlogits), 1e-6);
  worst_float_rel_err = std::max(worst_float_rel_err, rel_float);
  EXPECT_LT(rel_float, 1e-5) << "float vs double";
}

TEST(RouterBackwardTest, MatchesFiniteDifferences) {
  uint64_t seed = 5000;
  for (auto scoring : {RouterScoring::kSoftmax, RouterScoring::kSigmoid})
    for (bool renorm : {true, false})
      for (auto [n, e, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
               {1, 1, 1}, {7, 3, 1}, {7, 3, 3}, {7, 8, 2}, {37, 8, 2}, {5, 8, 8}}) {
        RouterShape shape{e, k, scoring, renorm};
        // Each term alone (localises a failure), then all three together, with and without bias.
        CheckBackward({n, shape, true, false, false, false}, ++seed);
        CheckBackward({n, shape, false, true, false, false}, ++seed);
        CheckBackward({n, shape, false, false, true, false}, ++seed);
        CheckBackward({n, shape, true, true, true, false}, ++seed);
        CheckBackward({n, shape, true, true, true, true}, ++seed);
      }
  std::printf(
      "router backward: worst norm-wise rel err vs finite differences = %.3g, "
      "float vs double = %.3g\n",
      worst_backward_rel_err, worst_float_rel_err);
}

}  // namespace
}  // namespace moetrain::kernels
