// CPU rotary position embedding (Hugging Face rotate-half).
//
// For each (b, s, h) row of D values and i < D/2, with c = cos(s, i), n = sin(s, i):
//   forward  R:   (x1, x2) -> (x1 c - x2 n,  x2 c + x1 n)     x1 = x_i, x2 = x_{i+D/2}
//   backward R^T: (g1, g2) -> (g1 c + g2 n,  g2 c - g1 n)
// R is orthogonal, so the backward is both the adjoint and the inverse. Parallel over (b, s).
#include "kernels/rope.h"

#include <cmath>

#include "core/status.h"

namespace moetrain::kernels {
namespace {

constexpr int64_t kParallelMin = 1 << 14;

// sign = +1 applies R, sign = -1 applies R^T (a rotation by the negated angle).
template <typename T>
void Rotate(T* x, const T* cos, const T* sin, int64_t b, int64_t s, int64_t h, int64_t d, T sign) {
  MT_CHECK_MSG(d % 2 == 0, "rope: head dim ", d, " must be even");
  const int64_t half = d / 2;
#pragma omp parallel for schedule(static) if (b * s * h * d > kParallelMin)
  for (int64_t bs = 0; bs < b * s; ++bs) {
    const int64_t pos = bs % s;
    const T* cp = cos + pos * half;
    const T* sp = sin + pos * half;
    for (int64_t hh = 0; hh < h; ++hh) {
      T* row = x + (bs * h + hh) * d;
      for (int64_t i = 0; i < half; ++i) {
        const T c = cp[i], sn = sign * sp[i];
        const T x1 = row[i], x2 = row[i + half];
        row[i] = x1 * c - x2 * sn;
        row[i + half] = x2 * c + x1 * sn;
      }
    }
  }
}

}  // namespace

// angle(pos, i) = pos * inv_freq_i, inv_freq_i = 1 / theta^(2i/D), all in double.
template <typename T>
void RopeTable(T* cos, T* sin, int64_t max_pos, int64_t d, double theta) {
  MT_CHECK_MSG(d % 2 == 0, "rope: head dim ", d, " must be even");
  const int64_t half = d / 2;
  for (int64_t p = 0; p < max_pos; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq = 1.0 / std::pow(theta, 2.0 * static_cast<double>(i) / static_cast<double>(d));
      const double angle = static_cast<double>(p) * inv_freq;
      cos[p * half + i] = static_cast<T>(std::cos(angle));
      sin[p * half + i] = static_cast<T>(std::sin(angle));
    }
  }
}

template <typename T>
void RopeForward(T* x, const T* cos, const T* sin, int64_t b, int64_t s, int64_t h, int64_t d) {
  Rotate(x, cos, sin, b, s, h, d, T(1));
}

template <typename T>
void RopeBackward(T* dx, const T* cos, const T* sin, int64_t b, int64_t s, int64_t h, int64_t d) {
  Rotate(dx, cos, sin, b, s, h, d, T(-1));
}

#define MT_INSTANTIATE(T)                                                                        \
  template void RopeTable<T>(T*, T*, int64_t, int64_t, double);                                  \
  template void RopeForward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t);      \
  template void RopeBackward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
