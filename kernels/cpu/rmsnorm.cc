// CPU RMSNorm.
//
// Forward, per row i:  r_i = 1 / sqrt(mean_j x_ij^2 + eps)  (sum of squares in double; r saved as T),
//                      y_ij = (x_ij * r_i) * w_j.
// Backward, with g_ij = dy_ij * w_j and s_i = sum_j g_ij x_ij (double):
//   dx_ij = r_i * (g_ij - x_ij * r_i^2 * s_i / C)         (overwrite)
//   dw_j += sum_i dy_ij * x_ij * r_i                        (accumulate)
// dx is parallel over rows; dw is parallel over column blocks, each column summing rows in ascending
// order in double, so the result does not depend on the thread count.
#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>

namespace moetrain::kernels {
namespace {
constexpr int64_t kColBlock = 64;
constexpr int64_t kParallelMin = 1 << 14;
}  // namespace

template <typename T>
void RmsNormForward(T* y, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps) {
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    T* yi = y + i * c;
    double ss = 0;
    for (int64_t j = 0; j < c; ++j) ss += static_cast<double>(xi[j]) * static_cast<double>(xi[j]);
    const T r = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(c) + eps));
    rstd[i] = r;
    for (int64_t j = 0; j < c; ++j) yi[j] = (xi[j] * r) * w[j];
  }
}

template <typename T>
void RmsNormBackward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t n,
                     int64_t c) {
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    const T* dyi = dy + i * c;
    T* dxi = dx + i * c;
    const double r = static_cast<double>(rstd[i]);
    double s = 0;
    for (int64_t j = 0; j < c; ++j)
      s += static_cast<double>(dyi[j]) * static_cast<double>(w[j]) * static_cast<double>(xi[j]);
    const double k = r * r * s / static_cast<double>(c);
    for (int64_t j = 0; j < c; ++j)
      dxi[j] = static_cast<T>(
          r * (static_cast<double>(dyi[j]) * static_cast<double>(w[j]) - static_cast<double>(xi[j]) * k));
  }

  const int64_t num_blocks = (c + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    const int64_t j0 = blk * kColBlock;
    const int64_t j1 = std::min(c, j0 + kColBlock);
    double acc[kColBlock] = {};
    for (int64_t i = 0; i < n; ++i) {  // ascending rows
      const double r = static_cast<double>(rstd[i]);
      const T* xi = x + i * c;
      const T* dyi = dy + i * c;
      for (int64_t j = j0; j < j1; ++j)
        acc[j - j0] += static_cast<double>(dyi[j]) * static_cast<double>(xi[j]) * r;
    }
    for (int64_t j = j0; j < j1; ++j) dw[j] = static_cast<T>(static_cast<double>(dw[j]) + acc[j - j0]);
  }
}

#define MT_INSTANTIATE(T)                                                                       \
  template void RmsNormForward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);       \
  template void RmsNormBackward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t,     \
                                   int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
