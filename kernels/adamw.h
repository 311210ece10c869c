// AdamW (Loshchilov & Hutter), decoupled weight decay, bias-corrected with the tensor's own step count
// (experts that skip steps keep their own count — see optim/ sparse expert updates):
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )
#pragma once

#include <cstdint>

namespace moetrain::kernels {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// In place on param, m, v (n elements each). step >= 1 is this tensor's step count after the update.
// grad_scale multiplies the gradient first (clipping / loss-scale undo without an extra pass).
template <typename T>
void AdamWStep(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWHyper& h, int64_t step,
               double grad_scale = 1.0);

}  // namespace moetrain::kernels
