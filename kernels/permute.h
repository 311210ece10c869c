// Token permutation into expert-sorted order (the "dispatch" half of an MoE layer, done locally).
//
// A routing of N tokens with k choices each (topk_idx(N,k)) becomes M <= N*k rows grouped by expert:
// expert e owns rows offsets[e] .. offsets[e+1]-1, counts[e] of them; inside an expert, rows are in
// ascending (token, choice) order, so the layout is deterministic. With capacity > 0, an expert keeps
// only its first `capacity` assignments in that order and the rest are dropped (sorted_pos = -1;
// a dropped assignment contributes nothing to the output). capacity = 0 is dropless.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// Outputs: counts(E), offsets(E+1), sorted_pos(N,k) (row of each assignment, or -1 if dropped),
// row_token(N*k) (token of each row; only the first M entries are meaningful). Returns M.
int64_t PermutePlan(int32_t* counts, int32_t* offsets, int32_t* sorted_pos, int32_t* row_token,
                    const int32_t* topk_idx, int64_t n, int64_t k, int64_t num_experts,
                    int64_t capacity);

// xs(M,C)[r] = x(N,C)[row_token[r]]
template <typename T>
void PermuteForward(T* xs, const T* x, const int32_t* row_token, int64_t m, int64_t c);

// dx(N,C)[t] = sum_j dxs[sorted_pos[t,j]] over kept j (overwrite; zero for a token with none kept).
template <typename T>
void PermuteBackward(T* dx, const T* dxs, const int32_t* sorted_pos, int64_t n, int64_t k, int64_t c);

// Combine: y(N,C)[t] = sum_j weight[t,j] * ys(M,C)[sorted_pos[t,j]] over kept j (overwrite).
template <typename T>
void UnpermuteForward(T* y, const T* ys, const T* weight, const int32_t* sorted_pos, int64_t n,
                      int64_t k, int64_t c);

// dys(M,C)[r] = weight[t,j] * dy[t] for r = sorted_pos[t,j] (overwrite);
// dweight(N,k)[t,j] = <dy[t], ys[r]>, 0 when dropped (overwrite).
template <typename T>
void UnpermuteBackward(T* dys, T* dweight, const T* dy, const T* ys, const T* weight,
                       const int32_t* sorted_pos, int64_t n, int64_t k, int64_t c);

}  // namespace moetrain::kernels
