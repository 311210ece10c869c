// Rounding fp32 values to a 16-bit float format (the "store in compute precision" step of mixed
// precision on CPU), and a finiteness check for gradients.
//
// RoundToDType / CastRound give, bit for bit, Bf16ToFloat(FloatToBf16(x)) or
// F16ToFloat(FloatToF16(x)) from core/dtype.h: round to nearest, ties to even; f16 overflow (|x| >=
// 65520) gives +-inf and f16 subnormals are rounded at 2^-24 granularity; inf stays inf; NaN
// becomes the quiet NaN those conversions return. kF32 leaves values unchanged. Any other dtype is
// a programming error (abort). The double overloads round through float first (double rounding;
// only the f64 reference model uses them, and it normally runs with kF32). OpenMP-parallel over
// elements for large n; results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moetrain::kernels {

// x(n) rounded in place.
void RoundToDType(float* x, int64_t n, DType dtype);
void RoundToDType(double* x, int64_t n, DType dtype);

// dst(n) = round(src(n)). dst may equal src.
void CastRound(const float* src, float* dst, int64_t n, DType dtype);

// True when no element of x(n) is inf or NaN.
bool AllFinite(const float* x, int64_t n);
bool AllFinite(const double* x, int64_t n);

}  // namespace moetrain::kernels
