// CPU SwiGLU: h = silu(a) * b with silu(a) = a * sigmoid(a).
// Backward: db = dh * silu(a);  da = dh * b * sigmoid(a) * (1 + a * (1 - sigmoid(a))).
// (sigmoid = 1 / (1 + exp(-a)) saturates cleanly to 0 or 1 for large |a|.)
// exp is internal::ExpT: std::exp for double, the vectorised ExpF for float (fast_exp.h).
#include "kernels/swiglu.h"

#include <cmath>

#include "kernels/cpu/fast_exp.h"

namespace moetrain::kernels {
namespace {
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

template <typename T>
void SwigluForward(T* h, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + internal::ExpT(-a[i]));
    h[i] = a[i] * sig * b[i];
  }
}

template <typename T>
void SwigluBackward(T* da, T* db, const T* dh, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + internal::ExpT(-a[i]));
    const T silu = a[i] * sig;
    const T g = dh[i];
    db[i] = g * silu;
    da[i] = g * b[i] * sig * (T(1) + a[i] * (T(1) - sig));
  }
}

#define MT_INSTANTIATE(T)                                                      \
  template void SwigluForward<T>(T*, const T*, const T*, int64_t);             \
  template void SwigluBackward<T>(T*, T*, const T*, const T*, const T*, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
