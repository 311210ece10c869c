// Mixture-of-Experts feed-forward of a decoder layer (orchestration only; the math lives in kernels/):
//   logits = hn Wg^T (N,E) -> router (scores, top-k idx/weights; optional selection bias)
//   -> permute hn into expert-sorted rows xs (M,C) -> per expert: ys = W2 (silu(W1 xs) * W3 xs)
//   -> combine y[t] = sum_j w_tj ys[row(t,j)]   (+ shared experts' SwiGLU MLP of hn, if any)
// M <= N*k rows (dropless) — buffers are planned for N*k. Saves logits, scores, routing, plan and the
// expert activations. Parameter grads +=; dhn overwritten.
// The aux and z losses span layers, so the model passes their per-layer gradient coefficients into
// Backward (see kernels/router.h for their definitions).
// Tensor parallel (tp group of t ranks): the router is replicated (every tp rank routes alike); each
// expert's and the shared experts' width is split over tp (w1/w3 column-, w2 row-parallel), so the
// combined output is a partial sum, AllReduced over tp once at the end of Forward. Backward
// AllReduces the combine-weight gradient (it reads the partial expert outputs) and the expert /
// shared input gradient over tp, then adds the (replicated) router's input gradient.
// REQUIRES: ExpertWidth() % t == 0 (and SharedWidth()).
// Mixed precision (set_store_dtype bf16/f16): the expert rows' a, b, h, outputs, the combined y and
// the gradients dys, dh, da, db, dxs, dhn are rounded to that dtype where they are written (xs are
// copies of the already rounded hn). Router logits, scores, combine weights and their gradients
// stay fp32 (DeepSeek-V3 / Megatron run the router in fp32), as does all arithmetic.
#pragma once

#include <vector>

#include "core/arena.h"
#include "kernels/router.h"
#include "model/config.h"
#include "model/mlp_block.h"
#include "model/slots.h"
#include "parallel/expert_dispatcher.h"

namespace moetrain::model {

template <typename T>
class MoeBlock {
 public:
  struct Weights {
    const T* gate; T* dgate;
    const float* bias;                       // (E) selection bias, or nullptr
    std::vector<const T*> w1, w2, w3;        // per LOCAL expert (all E without expert parallel)
    std::vector<T*> dw1, dw2, dw3;
    bool has_shared = false;
    typename MlpBlock<T>::Weights shared{};
  };
  MoeBlock() = default;
  // dispatcher: the expert-parallel exchange for this layer (owned by the model), or nullptr when
  // every expert is local.
  // tp: the tensor-parallel group, or nullptr.
  MoeBlock(const ModelConfig& c, int64_t n, parallel::ExpertDispatcher* dispatcher = nullptr,
           parallel::Communicator* tp = nullptr);

  // ep_size: expert-parallel group size (rows received per rank are planned for the worst case,
  // ep_size * N * k); tp: tensor-parallel size (expert widths per rank).
  static void DeclareActivations(SlotDeclarer* acts, const ModelConfig& c, int64_t n, int ep_size,
                                 int tp = 1);
  static void DeclareWorkspace(SlotDeclarer* ws, const ModelConfig& c, int64_t n, int ep_size,
                               int tp = 1);
  // shared_acts / shared_ws bind the shared-expert MLP (ignored without shared experts).
  void Bind(Weights w, const SlotBinder& acts, const SlotBinder& ws, const SlotBinder& shared_acts,
            const SlotBinder& shared_ws);

  // y(N,C) (overwrite) from hn(N,C). Adds this layer's aux statistics into aux_counts(E) and
  // aux_prob_sum(E), and returns sum_t logsumexp(logits_t)^2 (for the z-loss).
  // Activation rounding (kernels/cast.h), also for the shared experts; default kF32 = none.
  void set_store_dtype(DType dtype) {
    store_ = dtype;
    shared_.set_store_dtype(dtype);
  }

  double Forward(T* y, const T* hn, double* aux_counts, double* aux_prob_sum);
  // dhn(N,C) (overwrite) from dy(N,C). aux_coef(E): d loss / d p_te; z_coef: d loss / d sum_t lse^2.
  void Backward(T* dhn, const T* dy, const T* hn, const double* aux_coef, double z_coef);

  // Tokens kept per expert in the last forward (E), and the number of rows M.
  const int32_t* counts() const { return counts_; }
  int64_t num_rows() const { return m_; }

 private:
  int64_t n_ = 0, c_ = 0, e_ = 0, k_ = 0, f_ = 0, capacity_ = 0;
  kernels::RouterShape shape_{};
  Weights w_{};
  MlpBlock<T> shared_;
  DType store_ = DType::kF32;
  int64_t m_ = 0;
  parallel::ExpertDispatcher* disp_ = nullptr;
  parallel::Communicator* tp_ = nullptr;
  int64_t local_e_ = 0;  // experts this rank computes
  // Where the expert computation reads its rows: xs_/offsets_ (local) or the dispatched rows.
  const T* ex_in_ = nullptr;
  const int32_t* ex_off_ = nullptr;
  int64_t ex_rows_ = 0;
  T *lx_ = nullptr, *ly_ = nullptr;        // saved: dispatched rows in, expert outputs (R, C)
  T *ldys_ = nullptr, *ldxs_ = nullptr;    // workspace (R, C)
  // saved
  T *logits_ = nullptr, *scores_ = nullptr, *topk_w_ = nullptr, *xs_ = nullptr, *a_ = nullptr,
    *b_ = nullptr, *h_ = nullptr, *ys_ = nullptr;
  int32_t *topk_idx_ = nullptr, *counts_ = nullptr, *offsets_ = nullptr, *sorted_pos_ = nullptr,
          *row_token_ = nullptr;
  // workspace
  T *dlogits_ = nullptr, *dweight_ = nullptr, *dys_ = nullptr, *dh_ = nullptr, *da_ = nullptr,
    *db_ = nullptr, *dxs_ = nullptr, *dxs2_ = nullptr;
};

}  // namespace moetrain::model
