// Branch-free exp for float that GCC vectorises inside `#pragma omp simd` loops (std::exp is a
// scalar libm call, which keeps a loop scalar: ~15 ns per element, the main cost of softmax-heavy
// kernels). Internal to kernels/cpu/.
//
// ExpF(x), Cephes expf scheme: n = round(x / ln 2), r = x - n ln 2 (Cody-Waite two-constant
// reduction, |r| <= ln2 / 2), exp(r) by a degree-6 polynomial, times 2^n built from exponent bits
// (as 2^(n/2) 2^(n - n/2), so the product itself overflows to +inf past 88.72). Accuracy:
// relative error < 1e-7 for results in the normal range; x < -87.3365 (results below FLT_MIN,
// -inf included) gives exactly 0; x > 88.7228 gives +inf; NaN gives NaN. Deterministic: pure float arithmetic, no table, the same
// result in every lane and every thread. Uses the default round-to-nearest mode.
// ExpT<T>: ExpF for float, std::exp for double (double stays the exact reference path).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace moetrain::kernels::internal {

inline float BitsToFloat(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof(f));
  return f;
}
inline int32_t FloatToBits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof(i));
  return i;
}

#pragma omp declare simd notinbranch
inline float ExpF(float x) {
  constexpr float kLo = -87.3365447f;  // below: exp(x) < FLT_MIN, return 0
  constexpr float kHi = 89.0f;         // above 88.7228 the result overflows to inf by itself
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float xc = x < kLo ? kLo : x;          // (NaN passes both clamps and stays NaN)
  xc = xc > kHi ? kHi : xc;
  const float t = xc * kLog2e + kRound;
  const int32_t n = FloatToBits(t) - FloatToBits(kRound);  // round(xc / ln 2), in [-126, 129]
  const float fn = t - kRound;
  const float r = (xc - fn * kLn2Hi) - fn * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r) * r + r + 1.0f;
  const int32_t n1 = n >> 1, n2 = n - n1;  // 2^n as two factors, each a normal float
  const float y = p * BitsToFloat((n1 + 127) << 23) * BitsToFloat((n2 + 127) << 23);
  return x < kLo ? 0.0f : y;
}

template <typename T>
inline T ExpT(T x) {
  return std::exp(x);
}
template <>
inline float ExpT<float>(float x) {
  return ExpF(x);
}

}  // namespace moetrain::kernels::internal
