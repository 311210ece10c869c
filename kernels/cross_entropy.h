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

}  // namespace moetrain::kernels
