// SwiGLU MLP: y(N,C) = W2 ( silu(W1 x) * (W3 x) ), W1,W3: (I,C), W2: (C,I).
// Used for dense layers (HF names mlp.gate_proj / up_proj / down_proj) and for the fused shared
// experts of a MoE layer (block_sparse_moe.shared_experts.w1 / w2 / w3).
// Saves a = W1 x, b = W3 x, h = silu(a) * b (each (N,I)). Gradients: parameter grads +=;
// dx either overwritten or accumulated (caller chooses — the MoE layer adds it to the routed path).
// Mixed precision (set_store_dtype bf16/f16): a, b, h, y and dh, da, db, dx are rounded to that
// dtype where they are written; the arithmetic stays fp32.
#pragma once

#include <string>

#include "core/arena.h"
#include "model/slots.h"

namespace moetrain::model {

template <typename T>
class MlpBlock {
 public:
  struct Weights {
    const T* w1; const T* w2; const T* w3;
    T* dw1; T* dw2; T* dw3;
  };
  MlpBlock() = default;
  MlpBlock(int64_t n, int64_t c, int64_t width) : n_(n), c_(c), width_(width) {}

  static void DeclareActivations(SlotDeclarer* acts, int64_t n, int64_t width);
  static void DeclareWorkspace(SlotDeclarer* ws, int64_t n, int64_t width);
  void Bind(const Weights& w, const SlotBinder& acts, const SlotBinder& ws);

  // y(N,C) = MLP(x(N,C)) (overwrite).
  // Activation rounding (kernels/cast.h); default kF32 = none.
  void set_store_dtype(DType dtype) { store_ = dtype; }

  void Forward(T* y, const T* x);
  // dx(N,C) = or += dMLP/dx^T dy; dW1, dW2, dW3 +=.
  void Backward(T* dx, bool accumulate_dx, const T* dy, const T* x);

 private:
  int64_t n_ = 0, c_ = 0, width_ = 0;
  DType store_ = DType::kF32;
  Weights w_{};
  T *a_ = nullptr, *b_ = nullptr, *h_ = nullptr;      // saved (N,I)
  T *dh_ = nullptr, *da_ = nullptr, *db_ = nullptr;   // workspace (N,I)
};

}  // namespace moetrain::model
