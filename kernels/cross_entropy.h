// Fused softmax + cross-entropy over a vocabulary, with an ignore index.
//
// loss_t = logsumexp(logits_t) - logits_t[target_t]; rows whose target == ignore_index give 0 and no
// gradient. Softmax is never stored: backward recomputes it from logits and the saved lse.
// Precision: double computes every exp in double; float uses a vectorised float exp (relative
// error < 1e-7) and still sums the exponentials in double (kernels/cpu/cross_entropy.cc).
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// losses(N), lse(N) from logits(N,V), targets(N). Returns the number of non-ignored rows.
// REQUIRES: every non-ignored target in [0, V) (checked).
template <typename T>
int64_t CrossEntropyForward(T* losses, T* lse, const T* logits, const int32_t* targets, int64_t n,
                            int64_t v, int32_t ignore_index);

// dlogits(N,V) (overwrite) = dloss * (softmax(logits_t) - onehot(target_t)); 0 for ignored rows.
// dloss is dL/dloss_t, the same for every row (e.g. 1 / number of valid rows for a mean).
template <typename T>
void CrossEntropyBackward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, T dloss,
                          int64_t n, int64_t v, int32_t ignore_index);

// Vocab-parallel pieces: logits(N,Vl) hold columns [v_begin, v_begin + Vl) of the full vocabulary V.
// The caller combines the shards (max, then sums) with collectives:
//   row_max(N)  = max_j z_j over this shard                      -> AllReduce(max)
//   sum_exp(N)  = sum_j exp(z_j - row_max) over this shard (double), with row_max the GLOBAL max;
//   target_z(N) = z[target - v_begin] if the target is in the shard, else 0  -> AllReduce(sum)
// and lse = row_max + log(sum_exp), loss = lse - target_z. Ignored rows give target_z 0.
// REQUIRES: every non-ignored target in [0, V) (checked, with v the full vocabulary).
template <typename T>
void CrossEntropyShardMax(double* row_max, const T* logits, int64_t n, int64_t v_local);
template <typename T>
void CrossEntropyShardSums(double* sum_exp, double* target_z, const T* logits, const double* row_max,
                           const int32_t* targets, int64_t n, int64_t v, int64_t v_begin,
                           int64_t v_local, int32_t ignore_index);
// dlogits(N,Vl) (overwrite) = dloss * (exp(z - lse) - onehot(target - v_begin)); 0 for ignored rows.
template <typename T>
void CrossEntropyShardBackward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                               T dloss, int64_t n, int64_t v, int64_t v_begin, int64_t v_local,
                               int32_t ignore_index);

}  // namespace moetrain::kernels
