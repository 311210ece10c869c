// CPU fused softmax + cross-entropy.
//
// Per row t (accumulated in double): m = max_j z_j, lse = m + log(sum_j exp(z_j - m)),
// loss = lse - z_target. Backward: dz_j = dloss * (exp(z_j - lse) - [j == target]).
// Ignored rows (target == ignore_index) get loss 0 and a zero gradient; their lse is still computed
// (it is well defined and costs nothing extra to keep meaningful). Parallel over rows.
#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace moetrain::kernels {
namespace {

constexpr int64_t kParallelMin = 1 << 14;

// Validates targets serially (aborting outside any parallel region); returns the valid-row count.
int64_t CountValid(const int32_t* targets, int64_t n, int64_t v, int32_t ignore_index) {
  int64_t valid = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == ignore_index) continue;
    MT_CHECK_MSG(targets[t] >= 0 && targets[t] < v, "cross_entropy: target ", targets[t], " at row ",
                 t, " outside [0, ", v, ") and not the ignore index ", ignore_index);
    ++valid;
  }
  return valid;
}

}  // namespace

template <typename T>
int64_t CrossEntropyForward(T* losses, T* lse, const T* logits, const int32_t* targets, int64_t n,
                            int64_t v, int32_t ignore_index) {
  const int64_t valid = CountValid(targets, n, v, ignore_index);
#pragma omp parallel for schedule(static) if (n * v > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    const T* z = logits + t * v;
    double m = -INFINITY;
    for (int64_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(z[j]));
    double sum = 0;
    for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(z[j]) - m);
    const double l = m + std::log(sum);
    lse[t] = static_cast<T>(l);
    losses[t] = targets[t] == ignore_index ? T(0) : static_cast<T>(l - static_cast<double>(z[targets[t]]));
  }
  return valid;
}

template <typename T>
void CrossEntropyBackward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, T dloss,
                          int64_t n, int64_t v, int32_t ignore_index) {
  CountValid(targets, n, v, ignore_index);
  const double g = static_cast<double>(dloss);
#pragma omp parallel for schedule(static) if (n * v > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    const T* z = logits + t * v;
    T* dz = dlogits + t * v;
    if (targets[t] == ignore_index) {
      std::fill(dz, dz + v, T(0));
      continue;
    }
    const double l = static_cast<double>(lse[t]);
    for (int64_t j = 0; j < v; ++j) dz[j] = static_cast<T>(g * std::exp(static_cast<double>(z[j]) - l));
    dz[targets[t]] = static_cast<T>(g * (std::exp(static_cast<double>(z[targets[t]]) - l) - 1.0));
  }
}

#define MT_INSTANTIATE(T)                                                                          \
  template int64_t CrossEntropyForward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t,     \
                                          int32_t);                                                \
  template void CrossEntropyBackward<T>(T*, const T*, const T*, const int32_t*, T, int64_t,        \
                                        int64_t, int32_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
