// Shared helpers for moetrain tests: seeded random data, float64 comparisons that print the first
// mismatches and the max error, and central finite differences.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moetrain::testing {

template <typename T>
std::vector<T> RandomVector(int64_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

inline std::vector<int32_t> RandomInts(int64_t n, int32_t lo, int32_t hi_exclusive, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi_exclusive - 1);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

template <typename A, typename B>
std::vector<A> Cast(const std::vector<B>& v) {
  return std::vector<A>(v.begin(), v.end());
}

// Element-wise |a - b| <= atol + rtol * |b| (b is the reference). Prints the first 5 mismatches and
// the max abs / rel error, and returns an assertion result for EXPECT_TRUE.
template <typename TA, typename TB>
::testing::AssertionResult AllClose(const std::vector<TA>& actual, const std::vector<TB>& expected,
                                    double rtol, double atol, const std::string& what = "") {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << what << ": size " << actual.size() << " vs " << expected.size();
  double max_abs = 0, max_rel = 0;
  int bad = 0;
  std::string first;
  for (size_t i = 0; i < actual.size(); ++i) {
    double a = static_cast<double>(actual[i]), b = static_cast<double>(expected[i]);
    double err = std::fabs(a - b);
    if (!(std::isfinite(a)) && a != b) err = INFINITY;
    max_abs = std::max(max_abs, err);
    if (b != 0) max_rel = std::max(max_rel, err / std::fabs(b));
    if (!(err <= atol + rtol * std::fabs(b))) {
      if (bad < 5) first += "\n  [" + std::to_string(i) + "] got " + std::to_string(a) +
                            " want " + std::to_string(b);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << actual.size()
                                       << " mismatches (max abs " << max_abs << ", max rel "
                                       << max_rel << ")" << first;
}

// Norm-wise relative error ||a - b|| / max(||b||, tiny).
template <typename TA, typename TB>
double RelativeL2Error(const std::vector<TA>& a, const std::vector<TB>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// Central difference of a scalar function of x at coordinate i: (f(x+h e_i) - f(x-h e_i)) / 2h.
// f reads x (which is perturbed in place and restored).
inline double CentralDifference(std::vector<double>& x, size_t i, double h,
                                const std::function<double()>& f) {
  const double saved = x[i];
  x[i] = saved + h;
  const double fp = f();
  x[i] = saved - h;
  const double fm = f();
  x[i] = saved;
  return (fp - fm) / (2 * h);
}

// A random linear functional L(y) = <r, y> lets a vector output be checked with scalar differences:
// dL/dy = r.
inline double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central-difference gradient of a scalar function f (which reads x) with respect to every element of
// x; x is perturbed in place and restored.
inline std::vector<double> FiniteDifferenceGradient(std::vector<double>& x, double h,
                                                    const std::function<double()>& f) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) g[i] = CentralDifference(x, i, h, f);
  return g;
}

}  // namespace moetrain::testing
