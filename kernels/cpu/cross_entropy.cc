// CPU fused softmax + cross-entropy.
//
// Per row t: m = max_j z_j, lse = m + log(sum_j exp(z_j - m)) (the sum accumulated in double),
// loss = lse - z_target. Backward: dz_j = dloss * (exp(z_j - lse) - [j == target]).
// double: every exp and difference in double (the reference). float: z_j - m and z_j - lse in
// float and exp by the vectorised internal::ExpF (relative error < 1e-7; fast_exp.h); the sum of
// the exps is still accumulated in double (lanes combined in a fixed order, so deterministic).
// std::exp per element in double made this 2 x N x V libm calls, ~9% of a bench-small step.
// Ignored rows (target == ignore_index) get loss 0 and a zero gradient; their lse is still computed
// (it is well defined and costs nothing extra to keep meaningful). Parallel over rows.
#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/status.h"
#include "kernels/cpu/fast_exp.h"

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

// logsumexp of one row, the sum of exponentials in double.
double RowLse(const double* z, int64_t v) {
  double m = -INFINITY;
  for (int64_t j = 0; j < v; ++j) m = std::max(m, z[j]);
  double sum = 0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(z[j] - m);
  return m + std::log(sum);
}
double RowLse(const float* z, int64_t v) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < v; ++j) m = z[j] > m ? z[j] : m;
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < v; ++j) sum += static_cast<double>(internal::ExpF(z[j] - m));
  return static_cast<double>(m) + std::log(sum);
}

// dz(V) = g * exp(z - l) for one row.
void RowSoftmaxScaled(double* dz, const double* z, double l, double g, int64_t v) {
  for (int64_t j = 0; j < v; ++j) dz[j] = g * std::exp(z[j] - l);
}
void RowSoftmaxScaled(float* dz, const float* z, double l, double g, int64_t v) {
  const float lf = static_cast<float>(l), gf = static_cast<float>(g);
#pragma omp simd
  for (int64_t j = 0; j < v; ++j) dz[j] = gf * internal::ExpF(z[j] - lf);
}

}  // namespace

template <typename T>
int64_t CrossEntropyForward(T* losses, T* lse, const T* logits, const int32_t* targets, int64_t n,
                            int64_t v, int32_t ignore_index) {
  const int64_t valid = CountValid(targets, n, v, ignore_index);
#pragma omp parallel for schedule(static) if (n * v > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    const T* z = logits + t * v;
    const double l = RowLse(z, v);
    lse[t] = static_cast<T>(l);
    losses[t] = targets[t] == ignore_index ? T(0) : static_cast<T>(l - static_cast<double>(z[targets[t]]));
  }
  return valid;
}

template <typename T>
void CrossEntropyBackward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, T dloss,
                          int64_t n, int64_t v, int32_t ignore_index) {
  // The whole vocabulary is the one shard [0, v).
  CrossEntropyShardBackward(dlogits, logits, lse, targets, dloss, n, v, 0, v, ignore_index);
}

template <typename T>
void CrossEntropyShardMax(double* row_max, const T* logits, int64_t n, int64_t v_local) {
#pragma omp parallel for schedule(static) if (n * v_local > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    const T* z = logits + t * v_local;
    T m = -INFINITY;
    for (int64_t j = 0; j < v_local; ++j) m = z[j] > m ? z[j] : m;
    row_max[t] = static_cast<double>(m);
  }
}

template <typename T>
void CrossEntropyShardSums(double* sum_exp, double* target_z, const T* logits, const double* row_max,
                           const int32_t* targets, int64_t n, int64_t v, int64_t v_begin,
                           int64_t v_local, int32_t ignore_index) {
  CountValid(targets, n, v, ignore_index);
#pragma omp parallel for schedule(static) if (n * v_local > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    const T* z = logits + t * v_local;
    double sum = 0;
    if constexpr (std::is_same_v<T, float>) {
      const float m = static_cast<float>(row_max[t]);
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < v_local; ++j) sum += static_cast<double>(internal::ExpF(z[j] - m));
    } else {
      for (int64_t j = 0; j < v_local; ++j) sum += std::exp(static_cast<double>(z[j]) - row_max[t]);
    }
    sum_exp[t] = sum;
    const int64_t local = static_cast<int64_t>(targets[t]) - v_begin;
    target_z[t] = targets[t] != ignore_index && local >= 0 && local < v_local
                      ? static_cast<double>(z[local]) : 0.0;
  }
}

template <typename T>
void CrossEntropyShardBackward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                               T dloss, int64_t n, int64_t v, int64_t v_begin, int64_t v_local,
                               int32_t ignore_index) {
  CountValid(targets, n, v, ignore_index);
  const double g = static_cast<double>(dloss);
#pragma omp parallel for schedule(static) if (n * v_local > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    const T* z = logits + t * v_local;
    T* dz = dlogits + t * v_local;
    if (targets[t] == ignore_index) {
      std::fill(dz, dz + v_local, T(0));
      continue;
    }
    const double l = static_cast<double>(lse[t]);
    RowSoftmaxScaled(dz, z, l, g, v_local);
    const int64_t local = static_cast<int64_t>(targets[t]) - v_begin;
    if (local >= 0 && local < v_local)
      dz[local] = static_cast<T>(g * (std::exp(static_cast<double>(z[local]) - l) - 1.0));
  }
}

#define MT_INSTANTIATE(T)                                                                          \
  template int64_t CrossEntropyForward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t,     \
                                          int32_t);                                                \
  template void CrossEntropyBackward<T>(T*, const T*, const T*, const int32_t*, T, int64_t,        \
                                        int64_t, int32_t);                                         \
  template void CrossEntropyShardMax<T>(double*, const T*, int64_t, int64_t);                      \
  template void CrossEntropyShardSums<T>(double*, double*, const T*, const double*,                \
                                         const int32_t*, int64_t, int64_t, int64_t, int64_t,       \
                                         int32_t);                                                 \
  template void CrossEntropyShardBackward<T>(T*, const T*, const T*, const int32_t*, T, int64_t,   \
                                             int64_t, int64_t, int64_t, int32_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
