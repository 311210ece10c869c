// CPU token permutation: plan, permute (dispatch) and unpermute (combine), with their backwards.
//
// PermutePlan is a counting sort over the N*k assignments in (token, choice) order:
//   pass 1: each assignment takes the next free slot of its expert (or is dropped once the expert
//           holds `capacity`); the slot is parked in sorted_pos;
//   scan:   offsets = exclusive prefix sum of the kept counts, offsets[E] = M;
//   pass 2: sorted_pos += offsets[expert], row_token[sorted_pos] = token.
// Because slots are handed out in (token, choice) order, the layout is deterministic and the
// capacity drops keep the earliest tokens. Both passes are sequential (O(N*k), cheap).
//
// The data movers are gathers, so each output row is written by exactly one iteration and they
// parallelise without atomics:
//   PermuteForward     xs[r] = x[row_token[r]]                      parallel over rows r
//   PermuteBackward    dx[t] = sum_j dxs[sorted_pos[t,j]]           parallel over tokens t
//   UnpermuteForward   y[t]  = sum_j w[t,j] ys[sorted_pos[t,j]]     parallel over tokens t
//   UnpermuteBackward  dys[sorted_pos[t,j]] = w[t,j] dy[t],  dw[t,j] = <dy[t], ys[sorted_pos[t,j]]>
//                                                                   parallel over tokens t
// (each kept row belongs to exactly one (t, j), so the scatter into dys is race-free too).
#include "kernels/permute.h"

#include <cstdint>

#include "core/status.h"

namespace moetrain::kernels {

int64_t PermutePlan(int32_t* counts, int32_t* offsets, int32_t* sorted_pos, int32_t* row_token,
                    const int32_t* topk_idx, int64_t n, int64_t k, int64_t num_experts,
                    int64_t capacity) {
  MT_CHECK_MSG(num_experts >= 1 && k >= 1 && capacity >= 0,
               "PermutePlan: num_experts=", num_experts, " k=", k, " capacity=", capacity);
  for (int64_t e = 0; e < num_experts; ++e) counts[e] = 0;
  for (int64_t a = 0; a < n * k; ++a) {
    const int32_t e = topk_idx[a];
    MT_CHECK_MSG(e >= 0 && e < num_experts, "PermutePlan: expert ", e, " of assignment ", a,
                 " is outside [0, ", num_experts, ")");
    if (capacity > 0 && counts[e] >= capacity) {
      sorted_pos[a] = -1;
    } else {
      sorted_pos[a] = counts[e]++;  // slot within the expert; offset added below
    }
  }
  offsets[0] = 0;
  for (int64_t e = 0; e < num_experts; ++e) offsets[e + 1] = offsets[e] + counts[e];
  for (int64_t a = 0; a < n * k; ++a) {
    if (sorted_pos[a] < 0) continue;
    sorted_pos[a] += offsets[topk_idx[a]];
    row_token[sorted_pos[a]] = static_cast<int32_t>(a / k);
  }
  return offsets[num_experts];
}

template <typename T>
void PermuteForward(T* xs, const T* x, const int32_t* row_token, int64_t m, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m; ++r) {
    const T* src = x + static_cast<int64_t>(row_token[r]) * c;
    T* dst = xs + r * c;
    for (int64_t i = 0; i < c; ++i) dst[i] = src[i];
  }
}

template <typename T>
void PermuteBackward(T* dx, const T* dxs, const int32_t* sorted_pos, int64_t n, int64_t k,
                     int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    T* dst = dx + t * c;
    for (int64_t i = 0; i < c; ++i) dst[i] = T(0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = sorted_pos[t * k + j];
      if (r < 0) continue;
      const T* src = dxs + r * c;
      for (int64_t i = 0; i < c; ++i) dst[i] += src[i];
    }
  }
}

template <typename T>
void UnpermuteForward(T* y, const T* ys, const T* weight, const int32_t* sorted_pos, int64_t n,
                      int64_t k, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    T* dst = y + t * c;
    for (int64_t i = 0; i < c; ++i) dst[i] = T(0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = sorted_pos[t * k + j];
      if (r < 0) continue;
      const T w = weight[t * k + j];
      const T* src = ys + r * c;
      for (int64_t i = 0; i < c; ++i) dst[i] += w * src[i];
    }
  }
}

template <typename T>
void UnpermuteBackward(T* dys, T* dweight, const T* dy, const T* ys, const T* weight,
                       const int32_t* sorted_pos, int64_t n, int64_t k, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const T* g = dy + t * c;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = sorted_pos[t * k + j];
      if (r < 0) {
        dweight[t * k + j] = T(0);
        continue;
      }
      const T w = weight[t * k + j];
      const T* row = ys + r * c;
      T* drow = dys + r * c;
      double dot = 0;
      for (int64_t i = 0; i < c; ++i) {
        drow[i] = w * g[i];
        dot += static_cast<double>(g[i]) * static_cast<double>(row[i]);
      }
      dweight[t * k + j] = static_cast<T>(dot);
    }
  }
}

#define MT_INSTANTIATE(T)                                                                     \
  template void PermuteForward<T>(T*, const T*, const int32_t*, int64_t, int64_t);            \
  template void PermuteBackward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);  \
  template void UnpermuteForward<T>(T*, const T*, const T*, const int32_t*, int64_t, int64_t, \
                                    int64_t);                                                 \
  template void UnpermuteBackward<T>(T*, T*, const T*, const T*, const T*, const int32_t*,    \
                                     int64_t, int64_t, int64_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
