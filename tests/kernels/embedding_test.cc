// Embedding lookup against a float64 reference; backward against a sequential scatter and central
// differences; determinism of the scatter across thread counts.
#include "kernels/embedding.h"

#include <omp.h>

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
using ::moetrain::testing::RandomInts;
using ::moetrain::testing::RandomVector;
using ::moetrain::testing::RelativeL2Error;

// Tokens drawn from a small range so most ids repeat, plus an explicit run of equal ids and the
// extreme ids 0 and V-1.
std::vector<int32_t> TokensWithRepeats(int64_t n, int32_t v, uint64_t seed) {
  std::vector<int32_t> t = RandomInts(n, 0, v, seed);
  for (int64_t i = 0; i < n; i += 3) t[i] = static_cast<int32_t>(i % 7);
  t[0] = 0;
  t[n - 1] = v - 1;
  t[1] = t[2] = t[n - 2] = 5;
  return t;
}

std::vector<double> ReferenceForward(const std::vector<int32_t>& tok, const std::vector<double>& table,
                                     int64_t c) {
  std::vector<double> out(tok.size() * c);
  for (size_t i = 0; i < tok.size(); ++i)
    for (int64_t j = 0; j < c; ++j) out[i * c + j] = table[tok[i] * c + j];
  return out;
}

TEST(EmbeddingTest, ForwardMatchesReference) {
  const int64_t n = 37, v = 251, c = 67;
  auto tok = TokensWithRepeats(n, v, 1);
  auto table = RandomVector<double>(v * c, 2);
  auto want = ReferenceForward(tok, table, c);

  std::vector<double> out_d(n * c);
  EmbeddingForward(out_d.data(), tok.data(), table.data(), n, v, c);
  EXPECT_TRUE(AllClose(out_d, want, 0, 0, "f64 forward"));  // a copy: exact

  auto table_f = Cast<float>(table);
  std::vector<float> out_f(n * c);
  EmbeddingForward(out_f.data(), tok.data(), table_f.data(), n, v, c);
  EXPECT_TRUE(AllClose(out_f, want, 1e-7, 0, "f32 forward"));
}

TEST(EmbeddingTest, BackwardAccumulatesScatterAndMatchesFiniteDifferences) {
  const int64_t n = 29, v = 251, c = 13;
  auto tok = TokensWithRepeats(n, v, 3);
  auto table = RandomVector<double>(v * c, 4);
  auto r = RandomVector<double>(n * c, 5);  // L = <r, out>, so dL/dout = r

  // Sequential reference scatter on top of a non-zero initial gradient (parameter grads accumulate).
  auto dtable0 = RandomVector<double>(v * c, 6);
  std::vector<double> want = dtable0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) want[tok[i] * c + j] += r[i * c + j];

  std::vector<double> dtable = dtable0;
  EmbeddingBackward(dtable.data(), r.data(), tok.data(), n, v, c);
  EXPECT_TRUE(AllClose(dtable, want, 1e-15, 1e-15, "f64 backward"));

  std::vector<double> out(n * c);
  auto loss = [&] {
    EmbeddingForward(out.data(), tok.data(), table.data(), n, v, c);
    return Dot(r, out);
  };
  auto fd = FiniteDifferenceGradient(table, 1e-3, loss);
  std::vector<double> grad(v * c);
  for (int64_t i = 0; i < v * c; ++i) grad[i] = dtable[i] - dtable0[i];
  const double err = RelativeL2Error(grad, fd);
  EXPECT_LT(err, 1e-6);
  std::printf("  embedding backward vs FD: rel L2 error %.3g\n", err);

  auto dtable_f = Cast<float>(dtable0);
  auto r_f = Cast<float>(r);
  EmbeddingBackward(dtable_f.data(), r_f.data(), tok.data(), n, v, c);
  EXPECT_TRUE(AllClose(dtable_f, dtable, 1e-5, 1e-5, "f32 vs f64 backward"));
}

TEST(EmbeddingTest, BackwardIsBitwiseDeterministicAcrossThreadCounts) {
  // Large enough to take the parallel path; float so a changed summation order would show.
  const int64_t n = 301, v = 53, c = 257;
  auto tok = TokensWithRepeats(n, v, 7);
  auto dout = RandomVector<float>(n * c, 8);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    std::vector<float> dtable = RandomVector<float>(v * c, 9);
    EmbeddingBackward(dtable.data(), dout.data(), tok.data(), n, v, c);
    results.push_back(dtable);
  }
  omp_set_num_threads(saved);
  for (size_t k = 1; k < results.size(); ++k) EXPECT_EQ(results[k], results[0]) << "run " << k;

  // And equal to the plain sequential token-order sum.
  std::vector<float> want = RandomVector<float>(v * c, 9);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) want[tok[i] * c + j] += dout[i * c + j];
  EXPECT_EQ(results[0], want);
}

TEST(EmbeddingDeathTest, OutOfRangeTokenAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int64_t v = 11, c = 3;
  std::vector<float> table(v * c), out(2 * c);
  std::vector<int32_t> tok = {3, 11};
  EXPECT_DEATH(EmbeddingForward(out.data(), tok.data(), table.data(), 2, v, c), "token 11");
  tok = {-1, 0};
  EXPECT_DEATH(EmbeddingBackward(table.data(), out.data(), tok.data(), 2, v, c), "token -1");
}

}  // namespace
}  // namespace moetrain::kernels
