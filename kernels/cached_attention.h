// Causal grouped-query attention of a block of NEW queries against a key/value cache (inference).
//
// The cache holds the rotated keys and the values of positions 0 .. start+n-1 (the block's own keys
// included: the caller writes them before calling). Query i of the block sits at position start+i
// and attends to positions 0 .. start+i:
//   out_i,h = sum_j softmax_j(q_i,h . k_j,g / sqrt(D)) v_j,g,   g = h / (Hq / Hkv)
// Layouts: q(n,Hq,D), k_cache(T,Hkv,D), v_cache(T,Hkv,D) with T >= start+n, out(n,Hq,D).
// With start = 0 and n = S this is AttentionForward (kernels/attention.h) for one sequence; that
// kernel cannot serve decoding because its queries and keys must cover the same positions.
// Sums (dot products, the softmax denominator and the weighted values) are accumulated in double.
// Workspace: CachedAttentionWorkspaceElems(max_keys, num_threads) elements of T (one row of
// probabilities per thread). Parallel with OpenMP over (query, head); every output element is
// computed by one thread in a fixed order, so results do not depend on num_threads.
// REQUIRES: Hq % Hkv == 0, num_threads >= 1, not called from inside an OpenMP parallel region.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

int64_t CachedAttentionWorkspaceElems(int64_t max_keys, int num_threads);

template <typename T>
void CachedAttentionForward(T* out, const T* q, const T* k_cache, const T* v_cache, int64_t start,
                            int64_t n, int64_t hq, int64_t hkv, int64_t d, T* workspace,
                            int num_threads);

}  // namespace moetrain::kernels
