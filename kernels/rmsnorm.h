// RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w, per row. Sums are accumulated in double.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// y(N,C), rstd(N) saved for backward, x(N,C), w(C).
template <typename T>
void RmsNormForward(T* y, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps);

// dx(N,C) = (overwrite), dw(C) += (accumulate; deterministic order), from dy(N,C), x, w, rstd.
template <typename T>
void RmsNormBackward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t n,
                     int64_t c);

}  // namespace moetrain::kernels
