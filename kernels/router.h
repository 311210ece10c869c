// MoE router: scores, top-k selection, combine weights, and the pieces of the balancing losses.
//
// Per token t with router logits l_t (E):
//   scores s_t = softmax(l_t)            (kSoftmax, Mixtral)
//            or sigmoid(l_t)             (kSigmoid, DeepSeek-V3)
//   selection: the k experts with the largest s_t + bias (bias only affects WHICH experts are chosen,
//              never the weights — aux-loss-free balancing); ties go to the lower expert index.
//   weights w_tj = s_t[idx_tj], divided by sum_j s_t[idx_tj] when renormalize.
// Aux load-balancing loss (Hugging Face load_balancing_loss_func, summed over the tokens of ALL layers):
//   p_t = s_t (softmax) or s_t / sum(s_t) (sigmoid);  aux = E * sum_e (count_e / N) * (sum_t p_te / N)
//   where count_e = number of (t, j) choosing e and N = total tokens. Counts are not differentiable, so
//   d aux / d p_te = E * count_e / N^2 — the caller passes that per-expert coefficient to backward.
// Router z-loss: z = mean_t (logsumexp(l_t))^2.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

enum class RouterScoring { kSoftmax, kSigmoid };

struct RouterShape {
  int64_t num_experts = 0;  // E
  int64_t top_k = 0;        // k, 1 <= k <= E
  RouterScoring scoring = RouterScoring::kSoftmax;
  bool renormalize = true;
};

// scores(N,E), topk_idx(N,k), topk_weight(N,k) from logits(N,E); bias(E) may be nullptr.
// Rows of topk_idx are in descending order of (score + bias).
template <typename T>
void RouterForward(T* scores, int32_t* topk_idx, T* topk_weight, const T* logits, const float* bias,
                   int64_t n, const RouterShape& shape);

// Accumulates (+=) aux statistics over N tokens: counts(E) of chosen (t, j), prob_sum(E) of p_te
// (p as defined above). Double precision so sums over many layers and tokens stay exact enough.
template <typename T>
void RouterAccumulateStats(double* counts, double* prob_sum, const T* scores, const int32_t* topk_idx,
                           int64_t n, const RouterShape& shape);

// Sum over the N rows of logsumexp(l_t)^2 (the caller divides by its token count for the mean).
template <typename T>
double RouterZLossSum(const T* logits, int64_t n, const RouterShape& shape);

// dlogits(N,E) (overwrite) = d/dlogits of
//     sum_tj dweight_tj * w_tj                      (the combine weights' gradient, dweight(N,k))
//   + sum_te aux_coef[e] * p_te                     (aux: aux_coef may be nullptr)
//   + z_coef * sum_t logsumexp(l_t)^2               (z-loss: z_coef = 0 disables)
// topk_idx / topk_weight / scores are the forward outputs for the same logits.
template <typename T>
void RouterBackward(T* dlogits, const T* dweight, const double* aux_coef, double z_coef,
                    const T* logits, const T* scores, const int32_t* topk_idx, const T* topk_weight,
                    int64_t n, const RouterShape& shape);

}  // namespace moetrain::kernels
