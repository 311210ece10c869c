// Permutation kernels against float64 references: the plan (ordering, capacity drops, empty
// experts), permute / unpermute forward, and the backwards through exact adjoint identities.
#include "kernels/permute.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace moetrain::kernels {
namespace {

using ::moetrain::testing::AllClose;
using ::moetrain::testing::Cast;
using ::moetrain::testing::Dot;
using ::moetrain::testing::RandomVector;

// Router-like routing: k distinct experts per token, drawn from `allowed` (so some experts can be
// made to receive no token at all).
std::vector<int32_t> RandomRouting(int64_t n, int64_t k, std::vector<int32_t> allowed,
                                   uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> idx(n * k);
  for (int64_t t = 0; t < n; ++t) {
    std::shuffle(allowed.begin(), allowed.end(), rng);
    for (int64_t j = 0; j < k; ++j) idx[t * k + j] = allowed[j];
  }
  return idx;
}

std::vector<int32_t> AllExperts(int64_t e) {
  std::vector<int32_t> v(e);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

struct Plan {
  std::vector<int32_t> counts, offsets, sorted_pos, row_token;
  int64_t m = 0;
};

// Straightforward reference: walk the experts in order, and for each the assignments in
// (token, choice) order, keeping the first `capacity`.
Plan RefPlan(const std::vector<int32_t>& idx, int64_t n, int64_t k, int64_t e, int64_t capacity) {
  Plan p;
  p.counts.assign(e, 0);
  p.offsets.assign(e + 1, 0);
  p.sorted_pos.assign(n * k, -1);
  for (int64_t x = 0; x < e; ++x) {
    p.offsets[x] = static_cast<int32_t>(p.m);
    for (int64_t a = 0; a < n * k; ++a) {
      if (idx[a] != x) continue;
      if (capacity > 0 && p.counts[x] >= capacity) continue;
      p.sorted_pos[a] = static_cast<int32_t>(p.m++);
      p.row_token.push_back(static_cast<int32_t>(a / k));
      ++p.counts[x];
    }
  }
  p.offsets[e] = static_cast<int32_t>(p.m);
  return p;
}

Plan RunPlan(const std::vector<int32_t>& idx, int64_t n, int64_t k, int64_t e, int64_t capacity) {
  Plan p;
  p.counts.assign(e, -5);
  p.offsets.assign(e + 1, -5);
  p.sorted_pos.assign(n * k, -5);
  p.row_token.assign(n * k, -5);
  p.m = PermutePlan(p.counts.data(), p.offsets.data(), p.sorted_pos.data(), p.row_token.data(),
                    idx.data(), n, k, e, capacity);
  p.row_token.resize(p.m);
  return p;
}

void ExpectSamePlan(const Plan& got, const Plan& want) {
  EXPECT_EQ(got.m, want.m);
  EXPECT_EQ(got.counts, want.counts);
  EXPECT_EQ(got.offsets, want.offsets);
  EXPECT_EQ(got.sorted_pos, want.sorted_pos);
  EXPECT_EQ(got.row_token, want.row_token);
}

// The data movers for one plan, in T, against float64 references and adjoint identities.
template <typename T>
void CheckDataMovers(const Plan& p, int64_t n, int64_t k, int64_t c, uint64_t seed) {
  SCOPED_TRACE(sizeof(T) == 4 ? "float" : "double");
  const int64_t m = p.m;
  const double tol = sizeof(T) == 4 ? 1e-6 : 1e-14;
  const auto x = RandomVector<T>(n * c, seed);
  const auto weight = RandomVector<T>(n * k, seed + 1);
  const auto ys = RandomVector<T>(m * c, seed + 2);
  const auto dy = RandomVector<T>(n * c, seed + 3);
  const auto dxs = RandomVector<T>(m * c, seed + 4);

  // PermuteForward: xs[r] = x[row_token[r]].
  std::vector<T> xs(m * c, T(-9));
  PermuteForward(xs.data(), x.data(), p.row_token.data(), m, c);
  std::vector<double> ref_xs(m * c);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < c; ++i) ref_xs[r * c + i] = x[p.row_token[r] * c + i];
  EXPECT_TRUE(AllClose(xs, ref_xs, 0, 0, "xs"));

  // PermuteBackward: reference scatter-add, and <dxs, P x> = <P^T dxs, x>.
  std::vector<T> dx(n * c, T(-9));
  PermuteBackward(dx.data(), dxs.data(), p.sorted_pos.data(), n, k, c);
  std::vector<double> ref_dx(n * c, 0.0);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < c; ++i) ref_dx[p.row_token[r] * c + i] += dxs[r * c + i];
  EXPECT_TRUE(AllClose(dx, ref_dx, tol, tol, "dx"));
  const double lhs = Dot(Cast<double>(dxs), ref_xs), rhs = Dot(Cast<double>(dx), Cast<double>(x));
  EXPECT_NEAR(lhs, rhs, 10 * tol * (1 + std::fabs(lhs))) << "permute adjoint";

  // UnpermuteForward: y[t] = sum over kept j of weight * ys[row].
  std::vector<T> y(n * c, T(-9));
  UnpermuteForward(y.data(), ys.data(), weight.data(), p.sorted_pos.data(), n, k, c);
  std::vector<double> ref_y(n * c, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = p.sorted_pos[t * k + j];
      if (r < 0) continue;
      for (int64_t i = 0; i < c; ++i)
        ref_y[t * c + i] += double(weight[t * k + j]) * double(ys[r * c + i]);
    }
  EXPECT_TRUE(AllClose(y, ref_y, tol, tol, "y"));

  // UnpermuteBackward: reference, and both adjoint identities of the bilinear map (ys, w) -> y:
  //   <dy, U_w ys> = <dys, ys>   and   <dy, U_w ys> = <dweight, w>.
  std::vector<T> dys(m * c, T(-9)), dweight(n * k, T(-9));
  UnpermuteBackward(dys.data(), dweight.data(), dy.data(), ys.data(), weight.data(),
                    p.sorted_pos.data(), n, k, c);
  std::vector<double> ref_dys(m * c, 0.0), ref_dw(n * k, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = p.sorted_pos[t * k + j];
      if (r < 0) continue;
      for (int64_t i = 0; i < c; ++i) {
        ref_dys[r * c + i] = double(weight[t * k + j]) * double(dy[t * c + i]);
        ref_dw[t * k + j] += double(dy[t * c + i]) * double(ys[r * c + i]);
      }
    }
  EXPECT_TRUE(AllClose(dys, ref_dys, tol, tol, "dys"));
  EXPECT_TRUE(AllClose(dweight, ref_dw, tol, tol, "dweight"));
  const double ydy = Dot(ref_y, Cast<double>(dy));
  EXPECT_NEAR(ydy, Dot(Cast<double>(dys), Cast<double>(ys)), 10 * tol * (1 + std::fabs(ydy)))
      << "unpermute adjoint in ys";
  EXPECT_NEAR(ydy, Dot(Cast<double>(dweight), Cast<double>(weight)),
              10 * tol * (1 + std::fabs(ydy)))
      << "unpermute adjoint in weight";
  for (int64_t a = 0; a < n * k; ++a) {
    if (p.sorted_pos[a] < 0) {
      EXPECT_EQ(dweight[a], T(0)) << "dropped assignment " << a;
    }
  }
}

TEST(PermuteTest, PlanAndDataMoversMatchReference) {
  uint64_t seed = 10;
  int cases = 0;
  for (int64_t n : {1, 7, 37})
    for (int64_t e : {1, 3, 8})
      for (int64_t k : {int64_t{1}, int64_t{2}, e}) {
        if (k > e) continue;
        for (int64_t capacity : {0, 1, 3, 1000}) {
          SCOPED_TRACE("N=" + std::to_string(n) + " E=" + std::to_string(e) +
                       " k=" + std::to_string(k) + " cap=" + std::to_string(capacity));
          const auto idx = RandomRouting(n, k, AllExperts(e), ++seed);
          const Plan want = RefPlan(idx, n, k, e, capacity);
          const Plan got = RunPlan(idx, n, k, e, capacity);
          ExpectSamePlan(got, want);
          for (int64_t c : {1, 5}) {
            CheckDataMovers<float>(got, n, k, c, ++seed);
            CheckDataMovers<double>(got, n, k, c, ++seed);
          }
          ++cases;
        }
      }
  EXPECT_GT(cases, 50);
}

TEST(PermuteTest, ExpertsWithNoTokens) {
  // E = 5; only experts 1 and 3 are ever chosen, so experts 0, 2, 4 (first, middle, last) are
  // empty.
  const int64_t n = 7, k = 2, e = 5, c = 3;
  const auto idx = RandomRouting(n, k, {1, 3}, 77);
  const Plan p = RunPlan(idx, n, k, e, 0);
  ExpectSamePlan(p, RefPlan(idx, n, k, e, 0));
  EXPECT_EQ(p.counts, (std::vector<int32_t>{0, 7, 0, 7, 0}));
  EXPECT_EQ(p.offsets, (std::vector<int32_t>{0, 0, 7, 7, 14, 14}));
  CheckDataMovers<double>(p, n, k, c, 78);
  CheckDataMovers<float>(p, n, k, c, 79);
}

TEST(PermuteTest, CapacityKeepsEarliestTokensInOrder) {
  // Expert 0 is everyone's first choice; capacity 2 keeps tokens 0 and 1 only.
  const int64_t n = 4, k = 2, e = 3;
  const std::vector<int32_t> idx = {0, 1,  //
                                    0, 2,  //
                                    2, 0,  //
                                    0, 1};
  const Plan p = RunPlan(idx, n, k, e, 2);
  EXPECT_EQ(p.m, 6);
  EXPECT_EQ(p.counts, (std::vector<int32_t>{2, 2, 2}));
  EXPECT_EQ(p.offsets, (std::vector<int32_t>{0, 2, 4, 6}));
  EXPECT_EQ(p.sorted_pos, (std::vector<int32_t>{0, 2, 1, 4, 5, -1, -1, 3}));
  EXPECT_EQ(p.row_token, (std::vector<int32_t>{0, 1, 0, 3, 1, 2}));
  CheckDataMovers<double>(p, n, k, 4, 5);

  // Dropless: rows of an expert are in ascending (token, choice) order.
  const Plan q = RunPlan(idx, n, k, e, 0);
  EXPECT_EQ(q.m, 8);
  EXPECT_EQ(q.counts, (std::vector<int32_t>{4, 2, 2}));
  EXPECT_EQ(q.row_token, (std::vector<int32_t>{0, 1, 2, 3, 0, 3, 1, 2}));
}

TEST(PermuteTest, TokenWithAllChoicesDroppedGetsZeros) {
  const int64_t n = 3, k = 1, e = 2, c = 2;
  const std::vector<int32_t> idx = {1, 1, 0};  // capacity 1: token 1 is dropped entirely
  const Plan p = RunPlan(idx, n, k, e, 1);
  EXPECT_EQ(p.sorted_pos, (std::vector<int32_t>{1, -1, 0}));
  const std::vector<double> ys = {1, 2, 3, 4}, w = {0.5, 0.25, 2.0}, dxs = {1, 1, 1, 1};
  std::vector<double> y(n * c, -1), dx(n * c, -1);
  UnpermuteForward(y.data(), ys.data(), w.data(), p.sorted_pos.data(), n, k, c);
  EXPECT_EQ(y, (std::vector<double>{1.5, 2.0, 0.0, 0.0, 2.0, 4.0}));
  PermuteBackward(dx.data(), dxs.data(), p.sorted_pos.data(), n, k, c);
  EXPECT_EQ(dx, (std::vector<double>{1, 1, 0, 0, 1, 1}));
}

}  // namespace
}  // namespace moetrain::kernels
