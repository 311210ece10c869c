// AdamW hyperparameters (decoupled weight decay, Loshchilov & Hutter) and global-norm clipping, as
// ZeroOptimizer applies them: g' = g * min(1, grad_clip / (||g|| + 1e-6)); m = b1 m + (1-b1) g';
// v = b2 v + (1-b2) g'^2; p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p), wd only for tensors whose
// ParamSpec asks for it (matrices; not norms or buffers). Plain value type.
#pragma once

namespace moetrain::optim {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // max global L2 norm of the gradient; 0 = no clipping
};

}  // namespace moetrain::optim
