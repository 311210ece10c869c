// Knowledge-distillation loss head: KL to a teacher's temperature-softened distribution plus CE.
//
// Per row t with student logits z_s and teacher logits z_t (both (V)), temperature tau > 0:
//   p_s = softmax(z_s / tau), p_t = softmax(z_t / tau)
//   kl_t   = KL(p_t || p_s) = sum_j p_t,j (log p_t,j - log p_s,j)              (>= 0)
//   ce_t   = logsumexp(z_s) - z_s[target]                                     (kernels/cross_entropy.h)
//   loss_t = alpha * tau^2 * kl_t + (1 - alpha) * ce_t
// The tau^2 keeps the KL gradient's scale independent of tau (Hinton et al. 2015):
//   d(tau^2 kl_t)/dz_s = tau * (p_s - p_t).
// Rows whose target == ignore_index give 0 and no gradient (the same rows the CE skips).
// Precision: the KL part works in double for every exp and log whatever T is (log-softmax form,
// max-shifted, so it never overflows; p_t = 0 terms contribute exactly 0). The CE part IS
// kernels/cross_entropy, so alpha = 0 gives bitwise the CE forward and backward.
// Parallel over rows; deterministic for any thread count.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// kl(N) from student(N,V), teacher(N,V), targets(N). Returns the number of non-ignored rows.
// REQUIRES: temperature > 0; every non-ignored target in [0, V) (checked).
template <typename T>
int64_t DistillKlForward(T* kl, const T* student_logits, const T* teacher_logits,
                         const int32_t* targets, int64_t n, int64_t v, double temperature,
                         int32_t ignore_index);

// dlogits(N,V) += coef * tau * (p_s - p_t) on non-ignored rows (accumulates: the CE part is
// written first). coef is dL/d(tau^2 kl_t), e.g. alpha / number of targets.
template <typename T>
void DistillKlBackwardAccumulate(T* dlogits, const T* student_logits, const T* teacher_logits,
                                 const int32_t* targets, double coef, int64_t n, int64_t v,
                                 double temperature, int32_t ignore_index);

// The whole head: losses(N), ce(N), kl(N) and the student's lse(N) (saved for backward).
// Returns the number of non-ignored rows.
template <typename T>
int64_t DistillLossForward(T* losses, T* ce, T* kl, T* lse, const T* student_logits,
                           const T* teacher_logits, const int32_t* targets, int64_t n, int64_t v,
                           double alpha, double temperature, int32_t ignore_index);

// dlogits(N,V) (overwrite) = dloss * ((1 - alpha) (softmax(z_s) - onehot) + alpha tau (p_s - p_t));
// 0 for ignored rows. dloss is dL/dloss_t (e.g. 1 / number of targets for a mean); lse from
// DistillLossForward.
template <typename T>
void DistillLossBackward(T* dlogits, const T* student_logits, const T* lse, const T* teacher_logits,
                         const int32_t* targets, T dloss, int64_t n, int64_t v, double alpha,
                         double temperature, int32_t ignore_index);

}  // namespace moetrain::kernels
