#include "kernels/elementwise.h"

#include <cmath>

namespace moetrain::kernels {

template <typename T> void Fill(T* y, T value, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}
template <typename T> void Copy(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}
template <typename T> void Add(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
template <typename T> void AddInPlace(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}
template <typename T> void Scale(T* y, T s, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}
// Deterministic: a fixed sequential order (used for grad norms, where run-to-run equality matters).
template <typename T> double SumSquares(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}
template <typename T> bool AllFinite(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

#define MT_INSTANTIATE(T)                                        \
  template void Fill<T>(T*, T, int64_t);                         \
  template void Copy<T>(T*, const T*, int64_t);                  \
  template void Add<T>(T*, const T*, const T*, int64_t);         \
  template void AddInPlace<T>(T*, const T*, int64_t);            \
  template void Scale<T>(T*, T, int64_t);                        \
  template double SumSquares<T>(const T*, int64_t);              \
  template bool AllFinite<T>(const T*, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
template void Copy<int32_t>(int32_t*, const int32_t*, int64_t);
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
