// CPU rounding to bf16 / f16 and back, on the float bit pattern (branch-free so the loops
// vectorise).
//
// bf16 keeps the top 16 bits of a float: add 0x7fff plus the lowest kept bit (round to nearest
// even; a carry into the exponent correctly gives the next binade or inf), then clear the low 16
// bits. f16 (1 sign, 5 exponent, 10 mantissa bits, bias 15), by magnitude |x|:
//   NaN                  -> quiet NaN (sign kept, payload dropped, as FloatToF16 does)
//   |x| >= 65520         -> inf (65520 is the midpoint between 65504, the max finite, and 2^16)
//   |x| <  2^-14         -> subnormal range: (|x| + 0.5f) - 0.5f rounds |x| to a multiple of 2^-24
//                           (the float ulp in [0.5, 1)), which is the f16 subnormal spacing
//   otherwise            -> keep 10 mantissa bits: add 0xfff plus the lowest kept bit, clear 13
//   bits
// (core/dtype.h's scalar conversions are the independent reference in tests/kernels/cast_test.cc.)
#include "kernels/cast.h"

#include <cmath>
#include <cstring>

#include "core/status.h"

namespace moetrain::kernels {
namespace {

constexpr int64_t kParallelMin = 1 << 15;

inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float RoundBf16(float f) {
  const uint32_t u = Bits(f);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const uint32_t quiet = (u | 0x00400000u) & 0xffff0000u;
  return FromBits(nan ? quiet : rounded);
}

inline float RoundF16(float f) {
  const uint32_t u = Bits(f);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t mag = u & 0x7fffffffu;
  const uint32_t normal = (mag + 0xfffu + ((mag >> 13) & 1u)) & ~0x1fffu;
  const float magic = 0.5f;
  const uint32_t sub = Bits((FromBits(mag) + magic) - magic);
  uint32_t r = mag < 0x38800000u ? sub : normal;
  r = mag >= 0x477ff000u ? 0x7f800000u : r;
  r = mag > 0x7f800000u ? 0x7fc00000u : r;
  return FromBits(sign | r);
}

template <float (*Round)(float)>
void Apply(const float* src, float* dst, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dst[i] = Round(src[i]);
}

}  // namespace

void CastRound(const float* src, float* dst, int64_t n, DType dtype) {
  switch (dtype) {
    case DType::kF32:
      if (dst != src) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kBF16:
      Apply<RoundBf16>(src, dst, n);
      return;
    case DType::kF16:
      Apply<RoundF16>(src, dst, n);
      return;
    default:
      MT_CHECK_MSG(false, "RoundToDType: unsupported dtype ", DTypeName(dtype));
  }
}

void RoundToDType(float* x, int64_t n, DType dtype) { CastRound(x, x, n, dtype); }

void RoundToDType(double* x, int64_t n, DType dtype) {
  if (dtype == DType::kF32) return;
  MT_CHECK_MSG(dtype == DType::kBF16 || dtype == DType::kF16, "RoundToDType: unsupported dtype ",
               DTypeName(dtype));
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(x[i]);
    x[i] = dtype == DType::kBF16 ? RoundBf16(f) : RoundF16(f);
  }
}

// A value is finite iff its exponent field is not all ones; OR-reducing a flag vectorises.
bool AllFinite(const float* x, int64_t n) {
  uint32_t bad = 0;
#pragma omp parallel for simd schedule(static) reduction(| : bad) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) bad |= (Bits(x[i]) & 0x7f800000u) == 0x7f800000u;
  return bad == 0;
}

bool AllFinite(const double* x, int64_t n) {
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(x[i]);
  return bad == 0;
}

}  // namespace moetrain::kernels
