#include "kernels/cached_attention.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "core/status.h"

namespace moetrain::kernels {

int64_t CachedAttentionWorkspaceElems(int64_t max_keys, int num_threads) {
  return max_keys * static_cast<int64_t>(num_threads);
}

template <typename T>
void CachedAttentionForward(T* out, const T* q, const T* k_cache, const T* v_cache, int64_t start,
                            int64_t n, int64_t hq, int64_t hkv, int64_t d, T* workspace,
                            int num_threads) {
  constexpr int64_t kMaxHeadDim = 512;  // the per-task accumulator row lives on the stack
  MT_CHECK_MSG(hq % hkv == 0 && num_threads >= 1 && d <= kMaxHeadDim, "cached attention: heads ",
               hq, " kv heads ", hkv, " head_dim ", d, " threads ", num_threads);
  const int64_t group = hq / hkv, kv_stride = hkv * d;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int64_t tasks = n * hq;
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t i = task / hq, h = task % hq, g = h / group;
    const int64_t num_keys = start + i + 1;  // causal: positions 0 .. start+i
    T* p = workspace + static_cast<int64_t>(omp_get_thread_num()) * (start + n);
    const T* qi = q + (i * hq + h) * d;
    double mx = -INFINITY;
    for (int64_t j = 0; j < num_keys; ++j) {
      const T* kj = k_cache + j * kv_stride + g * d;
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(qi[c]) * kj[c];
      p[j] = static_cast<T>(dot * scale);
      mx = std::max(mx, static_cast<double>(p[j]));
    }
    double sum = 0;
    for (int64_t j = 0; j < num_keys; ++j) {
      const double e = std::exp(static_cast<double>(p[j]) - mx);
      p[j] = static_cast<T>(e);
      sum += e;
    }
    T* oi = out + (i * hq + h) * d;
    double acc[kMaxHeadDim];  // weighted values, accumulated in double
    for (int64_t c = 0; c < d; ++c) acc[c] = 0;
    for (int64_t j = 0; j < num_keys; ++j) {
      const T* vj = v_cache + j * kv_stride + g * d;
      const double pj = static_cast<double>(p[j]);
      for (int64_t c = 0; c < d; ++c) acc[c] += pj * vj[c];
    }
    for (int64_t c = 0; c < d; ++c) oi[c] = static_cast<T>(acc[c] / sum);
  }
}

template void CachedAttentionForward<float>(float*, const float*, const float*, const float*,
                                            int64_t, int64_t, int64_t, int64_t, int64_t, float*,
                                            int);
template void CachedAttentionForward<double>(double*, const double*, const double*, const double*,
                                             int64_t, int64_t, int64_t, int64_t, int64_t, double*,
                                             int);

}  // namespace moetrain::kernels
