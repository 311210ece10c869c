// CPU distillation loss head (kernels/distill_loss.h).
//
// Per row, in double: a_j = z_s,j / tau, b_j = z_t,j / tau, la = logsumexp(a), lb = logsumexp(b)
// (max-shifted). log p_s,j = a_j - la, log p_t,j = b_j - lb, so
//   kl = sum_j exp(b_j - lb) * ((b_j - lb) - (a_j - la))
// never takes the log of a probability (no log(0)); a term with p_t,j = 0 is 0 * finite = 0.
// Backward recomputes la, lb (two passes over the row) instead of saving two more (N) vectors.
#include "kernels/distill_loss.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"
#include "kernels/cross_entropy.h"

namespace moetrain::kernels {
namespace {

constexpr int64_t kParallelMin = 1 << 14;

// logsumexp_j(z_j / tau) in double.
template <typename T>
double ScaledLse(const T* z, int64_t v, double inv_tau) {
  double m = -INFINITY;
  for (int64_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(z[j]) * inv_tau);
  double sum = 0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(z[j]) * inv_tau - m);
  return m + std::log(sum);
}

int64_t CountValidTargets(const int32_t* targets, int64_t n, int64_t v, int32_t ignore_index) {
  int64_t valid = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == ignore_index) continue;
    MT_CHECK_MSG(targets[t] >= 0 && targets[t] < v, "distill_loss: target ", targets[t], " at row ",
                 t, " outside [0, ", v, ") and not the ignore index ", ignore_index);
    ++valid;
  }
  return valid;
}

}  // namespace

template <typename T>
int64_t DistillKlForward(T* kl, const T* student_logits, const T* teacher_logits,
                         const int32_t* targets, int64_t n, int64_t v, double temperature,
                         int32_t ignore_index) {
  MT_CHECK_MSG(temperature > 0, "distill_loss: temperature must be > 0, got ", temperature);
  const int64_t valid = CountValidTargets(targets, n, v, ignore_index);
  const double inv_tau = 1.0 / temperature;
#pragma omp parallel for schedule(static) if (n * v > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == ignore_index) {
      kl[t] = T(0);
      continue;
    }
    const T* zs = student_logits + t * v;
    const T* zt = teacher_logits + t * v;
    const double la = ScaledLse(zs, v, inv_tau), lb = ScaledLse(zt, v, inv_tau);
    double sum = 0;
    for (int64_t j = 0; j < v; ++j) {
      const double log_pt = static_cast<double>(zt[j]) * inv_tau - lb;
      const double log_ps = static_cast<double>(zs[j]) * inv_tau - la;
      sum += std::exp(log_pt) * (log_pt - log_ps);
    }
    kl[t] = static_cast<T>(sum);
  }
  return valid;
}

template <typename T>
void DistillKlBackwardAccumulate(T* dlogits, const T* student_logits, const T* teacher_logits,
                                 const int32_t* targets, double coef, int64_t n, int64_t v,
                                 double temperature, int32_t ignore_index) {
  MT_CHECK_MSG(temperature > 0, "distill_loss: temperature must be > 0, got ", temperature);
  const double inv_tau = 1.0 / temperature, g = coef * temperature;
#pragma omp parallel for schedule(static) if (n * v > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == ignore_index) continue;
    const T* zs = student_logits + t * v;
    const T* zt = teacher_logits + t * v;
    T* dz = dlogits + t * v;
    const double la = ScaledLse(zs, v, inv_tau), lb = ScaledLse(zt, v, inv_tau);
    for (int64_t j = 0; j < v; ++j) {
      const double ps = std::exp(static_cast<double>(zs[j]) * inv_tau - la);
      const double pt = std::exp(static_cast<double>(zt[j]) * inv_tau - lb);
      dz[j] = static_cast<T>(static_cast<double>(dz[j]) + g * (ps - pt));
    }
  }
}

template <typename T>
int64_t DistillLossForward(T* losses, T* ce, T* kl, T* lse, const T* student_logits,
                           const T* teacher_logits, const int32_t* targets, int64_t n, int64_t v,
                           double alpha, double temperature, int32_t ignore_index) {
  const int64_t valid = CrossEntropyForward(ce, lse, student_logits, targets, n, v, ignore_index);
  DistillKlForward(kl, student_logits, teacher_logits, targets, n, v, temperature, ignore_index);
  const double kl_weight = alpha * temperature * temperature;
  for (int64_t t = 0; t < n; ++t)
    losses[t] = static_cast<T>((1.0 - alpha) * static_cast<double>(ce[t]) +
                               kl_weight * static_cast<double>(kl[t]));
  return valid;
}

template <typename T>
void DistillLossBackward(T* dlogits, const T* student_logits, const T* lse, const T* teacher_logits,
                         const int32_t* targets, T dloss, int64_t n, int64_t v, double alpha,
                         double temperature, int32_t ignore_index) {
  // (1 - alpha) * dloss is exactly dloss for alpha = 0, so the CE part is then bitwise plain CE;
  // the KL part adds (+/-)0 to it.
  const T ce_dloss = static_cast<T>(1.0 - alpha) * dloss;
  CrossEntropyBackward(dlogits, student_logits, lse, targets, ce_dloss, n, v, ignore_index);
  DistillKlBackwardAccumulate(dlogits, student_logits, teacher_logits, targets,
                              alpha * static_cast<double>(dloss), n, v, temperature, ignore_index);
}

#define MT_INSTANTIATE(T)                                                                        \
  template int64_t DistillKlForward<T>(T*, const T*, const T*, const int32_t*, int64_t, int64_t, \
                                       double, int32_t);                                         \
  template void DistillKlBackwardAccumulate<T>(T*, const T*, const T*, const int32_t*, double,   \
                                               int64_t, int64_t, double, int32_t);               \
  template int64_t DistillLossForward<T>(T*, T*, T*, T*, const T*, const T*, const int32_t*,     \
                                         int64_t, int64_t, double, double, int32_t);             \
  template void DistillLossBackward<T>(T*, const T*, const T*, const T*, const int32_t*, T,      \
                                       int64_t, int64_t, double, double, int32_t);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
