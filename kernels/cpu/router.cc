// CPU router: scores, top-k selection, combine weights, balancing statistics and the backward pass.
//
// Per token t with logits l (E), scores s and chosen experts K_1..K_k (= topk_idx[t, :]):
//   softmax   s_e = exp(l_e - m) / sum_f exp(l_f - m),  m = max_f l_f      (never overflows)
//   sigmoid   s_e = 1 / (1 + exp(-l_e)), written as exp(l) / (1 + exp(l)) for l < 0
//   select    k passes over the experts; pass j takes the best expert ranked strictly after the
//             one pass j-1 took, in the order (score + bias descending, index ascending). That
//             order is total, so nothing needs to be marked and no scratch memory is needed.
//   weights   w_j = s_{K_j} / D with D = sum_j s_{K_j} + eps (renormalize), else w_j = s_{K_j}.
//
// Backward: g = dL/ds is built in the dlogits row, then pulled back through the scoring in place.
//   weights   g_{K_j} += dw_j                                      (no renormalize)
//             g_{K_j} += (dw_j - sum_i dw_i w_i) / D               (renormalize; d(s/D)/ds)
//   aux       softmax, p = s:       g_e += a_e
//             sigmoid, p = s / S:   g_e += (a_e - sum_f a_f p_f) / S,   S = sum_f s_f + eps
//   scoring   softmax:  dl_e = s_e (g_e - sum_f s_f g_f)      sigmoid:  dl_e = g_e s_e (1 - s_e)
//   z-loss    d(z lse^2)/dl_e = 2 z lse softmax(l)_e   (softmax of the logits, for either scoring)
//
// All per-row arithmetic is done in double and rounded once to T. Everything is parallel over
// tokens except RouterAccumulateStats (a reduction into E doubles; kept sequential, so it is
// deterministic). RouterZLossSum reduces fixed token chunks in a fixed order, so its result does
// not depend on the thread count. No kernel allocates.
#include "kernels/router.h"

#include <cmath>
#include <cstdint>

#include "core/status.h"

namespace moetrain::kernels {
namespace {

// Guards divisions by a sum of scores (the same epsilon as DeepSeek-V3's top-k renormalisation).
constexpr double kSumEps = 1e-20;

// Fixed number of partial sums in RouterZLossSum: the summation order never depends on threads.
constexpr int64_t kZLossChunks = 64;

double Sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// Row maximum m and sum_e exp(l_e - m); logsumexp(l) = m + log(sum).
template <typename T>
void RowMaxSumExp(const T* l, int64_t num_experts, double* max, double* sum) {
  double m = static_cast<double>(l[0]);
  for (int64_t e = 1; e < num_experts; ++e) m = std::fmax(m, static_cast<double>(l[e]));
  double s = 0;
  for (int64_t e = 0; e < num_experts; ++e) s += std::exp(static_cast<double>(l[e]) - m);
  *max = m;
  *sum = s;
}

// True when expert a (key ka) ranks before expert b (key kb): larger key, ties to the lower index.
bool RanksBefore(double ka, int64_t a, double kb, int64_t b) {
  return ka > kb || (ka == kb && a < b);
}

// idx(k) = the k best experts of one token by (s + bias), best first. NaN keys are never chosen.
template <typename T>
void SelectTopK(int32_t* idx, const T* s, const float* bias, int64_t num_experts, int64_t k) {
  int64_t prev = -1;
  double prev_key = 0;
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    double best_key = 0;
    for (int64_t e = 0; e < num_experts; ++e) {
      const double key =
          static_cast<double>(s[e]) + (bias != nullptr ? static_cast<double>(bias[e]) : 0.0);
      if (std::isnan(key)) continue;
      if (prev >= 0 && !RanksBefore(prev_key, prev, key, e)) continue;  // taken by an earlier pass
      if (best < 0 || RanksBefore(key, e, best_key, best)) {
        best = e;
        best_key = key;
      }
    }
    MT_CHECK_MSG(best >= 0, "router: fewer than top_k=", k,
                 " experts have a finite score + bias; HINT: the router logits or the balancing "
                 "bias are NaN (training diverged?)");
    idx[j] = static_cast<int32_t>(best);
    prev = best;
    prev_key = best_key;
  }
}

void CheckShape(const RouterShape& shape) {
  MT_CHECK_MSG(shape.num_experts >= 1 && shape.top_k >= 1 && shape.top_k <= shape.num_experts,
               "router: need 1 <= top_k <= num_experts, got top_k=", shape.top_k,
               " num_experts=", shape.num_experts);
}

}  // namespace

template <typename T>
void RouterForward(T* scores, int32_t* topk_idx, T* topk_weight, const T* logits, const float* bias,
                   int64_t n, const RouterShape& shape) {
  CheckShape(shape);
  const int64_t num_experts = shape.num_experts, k = shape.top_k;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const T* l = logits + t * num_experts;  // (E)
    T* s = scores + t * num_experts;        // (E)
    int32_t* idx = topk_idx + t * k;        // (k)
    T* w = topk_weight + t * k;             // (k)
    if (shape.scoring == RouterScoring::kSoftmax) {
      double m, sum;
      RowMaxSumExp(l, num_experts, &m, &sum);
      for (int64_t e = 0; e < num_experts; ++e)
        s[e] = static_cast<T>(std::exp(static_cast<double>(l[e]) - m) / sum);
    } else {
      for (int64_t e = 0; e < num_experts; ++e) s[e] = static_cast<T>(Sigmoid(l[e]));
    }
    SelectTopK(idx, s, bias, num_experts, k);
    double denom = 1.0;
    if (shape.renormalize) {
      double chosen = 0;
      for (int64_t j = 0; j < k; ++j) chosen += static_cast<double>(s[idx[j]]);
      denom = chosen + kSumEps;
    }
    for (int64_t j = 0; j < k; ++j) w[j] = static_cast<T>(static_cast<double>(s[idx[j]]) / denom);
  }
}

template <typename T>
void RouterAccumulateStats(double* counts, double* prob_sum, const T* scores,
                           const int32_t* topk_idx, int64_t n, const RouterShape& shape) {
  CheckShape(shape);
  const int64_t num_experts = shape.num_experts, k = shape.top_k;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) counts[topk_idx[t * k + j]] += 1.0;
    const T* s = scores + t * num_experts;
    double inv = 1.0;  // p = s (softmax) or s / S (sigmoid)
    if (shape.scoring == RouterScoring::kSigmoid) {
      double total = 0;
      for (int64_t e = 0; e < num_experts; ++e) total += static_cast<double>(s[e]);
      inv = 1.0 / (total + kSumEps);
    }
    for (int64_t e = 0; e < num_experts; ++e) prob_sum[e] += static_cast<double>(s[e]) * inv;
  }
}

template <typename T>
double RouterZLossSum(const T* logits, int64_t n, const RouterShape& shape) {
  CheckShape(shape);
  const int64_t num_experts = shape.num_experts;
  double partial[kZLossChunks] = {};
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < kZLossChunks; ++c) {
    const int64_t begin = n * c / kZLossChunks, end = n * (c + 1) / kZLossChunks;
    double acc = 0;
    for (int64_t t = begin; t < end; ++t) {
      double m, sum;
      RowMaxSumExp(logits + t * num_experts, num_experts, &m, &sum);
      const double lse = m + std::log(sum);
      acc += lse * lse;
    }
    partial[c] = acc;
  }
  double total = 0;
  for (int64_t c = 0; c < kZLossChunks; ++c) total += partial[c];
  return total;
}

template <typename T>
void RouterBackward(T* dlogits, const T* dweight, const double* aux_coef, double z_coef,
                    const T* logits, const T* scores, const int32_t* topk_idx, const T* topk_weight,
                    int64_t n, const RouterShape& shape) {
  CheckShape(shape);
  const int64_t num_experts = shape.num_experts, k = shape.top_k;
  const bool sigmoid = shape.scoring == RouterScoring::kSigmoid;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const T* l = logits + t * num_experts;  // (E)
    const T* s = scores + t * num_experts;  // (E)
    const int32_t* idx = topk_idx + t * k;  // (k)
    const T* w = topk_weight + t * k;       // (k)
    const T* dw = dweight + t * k;          // (k)
    T* g = dlogits + t * num_experts;       // (E): dL/ds first, then dL/dl

    // Aux term.
    if (aux_coef == nullptr) {
      for (int64_t e = 0; e < num_experts; ++e) g[e] = T(0);
    } else if (!sigmoid) {
      for (int64_t e = 0; e < num_experts; ++e) g[e] = static_cast<T>(aux_coef[e]);
    } else {
      double total = 0, weighted = 0;
      for (int64_t e = 0; e < num_experts; ++e) {
        total += static_cast<double>(s[e]);
        weighted += aux_coef[e] * static_cast<double>(s[e]);
      }
      const double inv = 1.0 / (total + kSumEps);
      const double mean = weighted * inv;  // sum_f a_f p_f
      for (int64_t e = 0; e < num_experts; ++e) g[e] = static_cast<T>((aux_coef[e] - mean) * inv);
    }

    // Combine-weight term (the chosen experts are distinct, so each g entry gets one update).
    if (shape.renormalize) {
      double chosen = 0, dot = 0;
      for (int64_t j = 0; j < k; ++j) {
        chosen += static_cast<double>(s[idx[j]]);
        dot += static_cast<double>(dw[j]) * static_cast<double>(w[j]);
      }
      const double inv = 1.0 / (chosen + kSumEps);
      for (int64_t j = 0; j < k; ++j)
        g[idx[j]] = static_cast<T>(static_cast<double>(g[idx[j]]) +
                                   (static_cast<double>(dw[j]) - dot) * inv);
    } else {
      for (int64_t j = 0; j < k; ++j)
        g[idx[j]] = static_cast<T>(static_cast<double>(g[idx[j]]) + static_cast<double>(dw[j]));
    }

    // Pull back through the scoring function.
    if (sigmoid) {
      for (int64_t e = 0; e < num_experts; ++e) {
        const double se = static_cast<double>(s[e]);
        g[e] = static_cast<T>(static_cast<double>(g[e]) * se * (1.0 - se));
      }
    } else {
      double dot = 0;
      for (int64_t e = 0; e < num_experts; ++e)
        dot += static_cast<double>(s[e]) * static_cast<double>(g[e]);
      for (int64_t e = 0; e < num_experts; ++e)
        g[e] = static_cast<T>(static_cast<double>(s[e]) * (static_cast<double>(g[e]) - dot));
    }

    // Z-loss term: 2 z lse softmax(l).
    if (z_coef != 0.0) {
      double m, sum;
      RowMaxSumExp(l, num_experts, &m, &sum);
      const double scale = 2.0 * z_coef * (m + std::log(sum)) / sum;
      for (int64_t e = 0; e < num_experts; ++e)
        g[e] = static_cast<T>(static_cast<double>(g[e]) +
                              scale * std::exp(static_cast<double>(l[e]) - m));
    }
  }
}

#define MT_INSTANTIATE(T)                                                                     \
  template void RouterForward<T>(T*, int32_t*, T*, const T*, const float*, int64_t,           \
                                 const RouterShape&);                                         \
  template void RouterAccumulateStats<T>(double*, double*, const T*, const int32_t*, int64_t, \
                                         const RouterShape&);                                 \
  template double RouterZLossSum<T>(const T*, int64_t, const RouterShape&);                   \
  template void RouterBackward<T>(T*, const T*, const double*, double, const T*, const T*,    \
                                  const int32_t*, const T*, int64_t, const RouterShape&);
MT_INSTANTIATE(float)
MT_INSTANTIATE(double)
#undef MT_INSTANTIATE

}  // namespace moetrain::kernels
