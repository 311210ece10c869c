// CPU AdamW, element-wise in double (state stored as T):
//   g = grad_scale * grad;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )      (p before the update)
// (the bias corrections applied as multiplications by 1/(1-b1^t) and 1/(1-b2^t)).
// The loop is `omp parallel for simd`: lanes are independent elements, so vectorising changes
// nothing in the arithmetic (the kernels are built with -fno-math-errno, which lets sqrt vectorise).
#include "kernels/adamw.h"

#include <cmath>

#include "core/status.h"

namespace moetrain::kernels {
namespace {
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

template <typename T>
void AdamWStep(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWHyper& h, int64_t step,
               double grad_scale) {
  MT_CHECK_MSG(step >= 1, "adamw: step must be >= 1, got ", step);
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  // Multiplying by the reciprocals saves two of the three divisions per element (divisions and
  // the square root bound this loop: 33 -> 24 ms over 17.6M floats on 2 cores); the results move
  // by at most an ulp of double, far below the rounding to T.
  const double inv_bc1 = 1.0 / bc1, inv_bc2 = 1.0 / bc2;
  const double b1 = h.beta1, b2 = h.beta2, lr = h.lr, eps = h.eps, wd = h.weight_decay;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const double g = grad_scale * static_cast<double>(grad[i]);
    const double mi = b1 * static_cast<double>(m[i]) + (1.0 - b1) * g;
    const double vi = b2 * static_cast<double>(v[i]) + (1.0 - b2) * g * g;
    const double p = static_cast<double>(param[i]);
    const double update = (mi * inv_bc1) / (std::sqrt(vi * inv_bc2) + eps) + wd * p;
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    param[i] = static_cast<T>(p - lr * update);
  }
}

#define MT_INSTANTIATE(T)                                                                     \
  template void AdamWStep<T>(T*, T*, T*, const T*, int64_t, const AdamWHyper&, int64_t, double);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
