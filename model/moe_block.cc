#include "model/moe_block.h"

#include <cmath>

#include "core/phase_timer.h"
#include "kernels/cast.h"
#include "kernels/elementwise.h"
#include "kernels/grouped_matmul.h"
#include "kernels/matmul.h"
#include "kernels/permute.h"
#include "kernels/swiglu.h"

namespace moetrain::model {

template <typename T>
MoeBlock<T>::MoeBlock(const ModelConfig& c, int64_t n, parallel::ExpertDispatcher* dispatcher,
                      parallel::Communicator* tp)
    : n_(n), c_(c.hidden_size), e_(c.num_local_experts), k_(c.num_experts_per_tok),
      f_(c.ExpertWidth()), disp_(dispatcher), tp_(tp != nullptr && tp->size() > 1 ? tp : nullptr) {
  const int t = tp_ != nullptr ? tp_->size() : 1;
  MT_CHECK_MSG(f_ % t == 0 && c.SharedWidth() % t == 0, "moe: expert width ", f_,
               " / shared width ", c.SharedWidth(), " do not split over tp = ", t);
  f_ /= t;
  shared_ = MlpBlock<T>(n, c.hidden_size, c.SharedWidth() / t);
  local_e_ = disp_ != nullptr ? disp_->num_local_experts() : e_;
  shape_.num_experts = e_;
  shape_.top_k = k_;
  shape_.scoring = c.scoring_func == "sigmoid" ? kernels::RouterScoring::kSigmoid
                                               : kernels::RouterScoring::kSoftmax;
  shape_.renormalize = c.norm_topk_prob;
  // capacity = ceil(cf * N * k / E); 0 = dropless.
  capacity_ = c.capacity_factor > 0
                  ? static_cast<int64_t>(std::ceil(c.capacity_factor * n * k_ / static_cast<double>(e_)))
                  : 0;
}

template <typename T>
void MoeBlock<T>::DeclareActivations(SlotDeclarer* acts, const ModelConfig& c, int64_t n,
                                     int ep_size, int tp) {
  const int64_t e = c.num_local_experts, k = c.num_experts_per_tok, f = c.ExpertWidth() / tp;
  const int64_t rows = n * k, expert_rows = ep_size * rows;
  const DType t = DTypeOf<T>::value;
  acts->Add("router_logits", {n, e}, t);
  acts->Add("scores", {n, e}, t);
  acts->Add("topk_w", {n, k}, t);
  acts->Add("topk_idx", {n, k}, DType::kI32);
  acts->Add("counts", {e}, DType::kI32);
  acts->Add("offsets", {e + 1}, DType::kI32);
  acts->Add("sorted_pos", {n, k}, DType::kI32);
  acts->Add("row_token", {rows}, DType::kI32);
  acts->Add("xs", {rows, c.hidden_size}, t);
  acts->Add("a", {expert_rows, f}, t);
  acts->Add("b", {expert_rows, f}, t);
  acts->Add("h", {expert_rows, f}, t);
  acts->Add("ys", {rows, c.hidden_size}, t);
  if (ep_size > 1) {
    acts->Add("lx", {expert_rows, c.hidden_size}, t);
    acts->Add("ly", {expert_rows, c.hidden_size}, t);
  }
}

template <typename T>
void MoeBlock<T>::DeclareWorkspace(SlotDeclarer* ws, const ModelConfig& c, int64_t n,
                                   int ep_size, int tp) {
  const int64_t e = c.num_local_experts, k = c.num_experts_per_tok, f = c.ExpertWidth() / tp;
  const int64_t rows = n * k, expert_rows = ep_size * rows;
  const DType t = DTypeOf<T>::value;
  ws->Add("dlogits", {n, e}, t);
  ws->Add("dweight", {n, k}, t);
  ws->Add("dys", {rows, c.hidden_size}, t);
  ws->Add("dh", {expert_rows, f}, t);
  ws->Add("da", {expert_rows, f}, t);
  ws->Add("db", {expert_rows, f}, t);
  ws->Add("dxs", {rows, c.hidden_size}, t);
  ws->Add("dxs2", {expert_rows, c.hidden_size}, t);
  if (ep_size > 1) {
    ws->Add("ldys", {expert_rows, c.hidden_size}, t);
    ws->Add("ldxs", {expert_rows, c.hidden_size}, t);
  }
}

template <typename T>
void MoeBlock<T>::Bind(Weights w, const SlotBinder& acts, const SlotBinder& ws,
                       const SlotBinder& shared_acts, const SlotBinder& shared_ws) {
  w_ = std::move(w);
  if (w_.has_shared) shared_.Bind(w_.shared, shared_acts, shared_ws);
  logits_ = acts.Get<T>("router_logits");
  scores_ = acts.Get<T>("scores");
  topk_w_ = acts.Get<T>("topk_w");
  topk_idx_ = acts.Get<int32_t>("topk_idx");
  counts_ = acts.Get<int32_t>("counts");
  offsets_ = acts.Get<int32_t>("offsets");
  sorted_pos_ = acts.Get<int32_t>("sorted_pos");
  row_token_ = acts.Get<int32_t>("row_token");
  xs_ = acts.Get<T>("xs");
  a_ = acts.Get<T>("a");
  b_ = acts.Get<T>("b");
  h_ = acts.Get<T>("h");
  ys_ = acts.Get<T>("ys");
  dlogits_ = ws.Get<T>("dlogits");
  dweight_ = ws.Get<T>("dweight");
  dys_ = ws.Get<T>("dys");
  dh_ = ws.Get<T>("dh");
  da_ = ws.Get<T>("da");
  db_ = ws.Get<T>("db");
  dxs_ = ws.Get<T>("dxs");
  dxs2_ = ws.Get<T>("dxs2");
  if (disp_ != nullptr) {
    lx_ = acts.Get<T>("lx");
    ly_ = acts.Get<T>("ly");
    ldys_ = ws.Get<T>("ldys");
    ldxs_ = ws.Get<T>("ldxs");
  }
}

template <typename T>
double MoeBlock<T>::Forward(T* y, const T* hn, double* aux_counts, double* aux_prob_sum) {
  // Router.
  PhaseScope ph("fwd.router");
  kernels::LinearForward(logits_, hn, w_.gate, n_, c_, e_);
  kernels::RouterForward(scores_, topk_idx_, topk_w_, logits_, w_.bias, n_, shape_);
  kernels::RouterAccumulateStats(aux_counts, aux_prob_sum, scores_, topk_idx_, n_, shape_);
  const double z_sum = kernels::RouterZLossSum(logits_, n_, shape_);
  // Dispatch (local permute into expert-sorted rows).
  ph.Next("fwd.permute");
  m_ = kernels::PermutePlan(counts_, offsets_, sorted_pos_, row_token_, topk_idx_, n_, k_, e_,
                            capacity_);
  kernels::PermuteForward(xs_, hn, row_token_, m_, c_);
  // Expert parallel: send each expert's rows to its owner; receive this rank's experts' rows.
  ex_in_ = xs_;
  ex_off_ = offsets_;
  ex_rows_ = m_;
  if (disp_ != nullptr) {
    ph.Next("fwd.dispatch");
    MT_CHECK_OK(disp_->Prepare(counts_));
    MT_CHECK_OK(disp_->Dispatch(xs_, lx_));
    ex_in_ = lx_;
    ex_off_ = disp_->local_offsets().data();
    ex_rows_ = disp_->num_recv_rows();
  }
  T* ex_out = disp_ != nullptr ? ly_ : ys_;
  // Experts: grouped SwiGLU.
  ph.Next("fwd.experts.gemm");
  kernels::GroupedMatmulForward(a_, ex_in_, w_.w1.data(), ex_off_, local_e_, c_, f_);
  kernels::GroupedMatmulForward(b_, ex_in_, w_.w3.data(), ex_off_, local_e_, c_, f_);
  ph.Next("fwd.swiglu");
  kernels::RoundToDType(a_, ex_rows_ * f_, store_);
  kernels::RoundToDType(b_, ex_rows_ * f_, store_);
  kernels::SwigluForward(h_, a_, b_, ex_rows_ * f_);
  kernels::RoundToDType(h_, ex_rows_ * f_, store_);
  ph.Next("fwd.experts.gemm");
  kernels::GroupedMatmulForward(ex_out, h_, w_.w2.data(), ex_off_, local_e_, f_, c_);
  kernels::RoundToDType(ex_out, ex_rows_ * c_, store_);
  if (disp_ != nullptr) {
    ph.Next("fwd.dispatch");
    MT_CHECK_OK(disp_->Combine(ly_, ys_));
  }
  // Combine.
  ph.Next("fwd.permute");
  kernels::UnpermuteForward(y, ys_, topk_w_, sorted_pos_, n_, k_, c_);
  ph.Next(nullptr);
  if (w_.has_shared) {
    PhaseScope shared_phase("fwd.shared");
    shared_.Forward(dxs_ /* scratch (N,C) fits: rows >= N */, hn);
    kernels::AddInPlace(y, dxs_, n_ * c_);
  }
  if (tp_ != nullptr) {  // every width was split: sum the partial outputs (combine is linear)
    PhaseScope tp_phase("fwd.moe.tp_allreduce");
    MT_CHECK_OK(tp_->AllReduce(y, y, n_ * c_, DTypeOf<T>::value));
  }
  kernels::RoundToDType(y, n_ * c_, store_);
  return z_sum;
}

template <typename T>
void MoeBlock<T>::Backward(T* dhn, const T* dy, const T* hn, const double* aux_coef, double z_coef) {
  // Combine backward: gradients for the expert outputs and the combine weights.
  PhaseScope ph("bwd.permute");
  kernels::UnpermuteBackward(dys_, dweight_, dy, ys_, topk_w_, sorted_pos_, n_, k_, c_);
  kernels::RoundToDType(dys_, m_ * c_, store_);  // (dweight stays fp32: router side)
  if (tp_ != nullptr)  // dweight = <dy, ys> read this rank's partial ys: sum over tp
    MT_CHECK_OK(tp_->AllReduce(dweight_, dweight_, n_ * k_, DTypeOf<T>::value));
  // Expert parallel: the gradient of Combine is Dispatch (same plan as the forward).
  const T* ex_dy = dys_;
  T* ex_dx = dxs_;
  if (disp_ != nullptr) {
    ph.Next("bwd.dispatch");
    MT_CHECK_OK(disp_->Dispatch(dys_, ldys_));
    ex_dy = ldys_;
    ex_dx = ldxs_;
  }
  // Experts backward.
  ph.Next("bwd.experts.gemm");
  kernels::GroupedMatmulBackward(dh_, w_.dw2.data(), ex_dy, h_, w_.w2.data(), ex_off_, local_e_, f_, c_);
  ph.Next("bwd.swiglu");
  kernels::RoundToDType(dh_, ex_rows_ * f_, store_);
  kernels::SwigluBackward(da_, db_, dh_, a_, b_, ex_rows_ * f_);
  kernels::RoundToDType(da_, ex_rows_ * f_, store_);
  kernels::RoundToDType(db_, ex_rows_ * f_, store_);
  ph.Next("bwd.experts.gemm");
  kernels::GroupedMatmulBackward(ex_dx, w_.dw1.data(), da_, ex_in_, w_.w1.data(), ex_off_, local_e_, c_, f_);
  kernels::GroupedMatmulBackward(dxs2_, w_.dw3.data(), db_, ex_in_, w_.w3.data(), ex_off_, local_e_, c_, f_);
  ph.Next("bwd.permute");
  kernels::AddInPlace(ex_dx, dxs2_, ex_rows_ * c_);
  kernels::RoundToDType(ex_dx, ex_rows_ * c_, store_);
  // ... and the gradient of Dispatch is Combine.
  if (disp_ != nullptr) {
    ph.Next("bwd.dispatch");
    MT_CHECK_OK(disp_->Combine(ldxs_, dxs_));
    ph.Next("bwd.permute");
  }
  // Dispatch backward: sum each token's rows.
  kernels::PermuteBackward(dhn, dxs_, sorted_pos_, n_, k_, c_);
  ph.Next(nullptr);
  if (w_.has_shared) {
    PhaseScope shared_phase("bwd.shared");
    shared_.Backward(dhn, /*accumulate_dx=*/true, dy, hn);
  }
  if (tp_ != nullptr) {  // the expert and shared input gradients are partial over tp
    PhaseScope tp_phase("bwd.moe.tp_allreduce");
    MT_CHECK_OK(tp_->AllReduce(dhn, dhn, n_ * c_, DTypeOf<T>::value));
  }
  // Router backward (replicated over tp): combine weights + aux + z-loss, then through the gate.
  ph.Next("bwd.router");
  kernels::RouterBackward(dlogits_, dweight_, aux_coef, z_coef, logits_, scores_, topk_idx_, topk_w_,
                          n_, shape_);
  kernels::Matmul(dhn, dlogits_, w_.gate, n_, c_, e_, false, false, T(1), T(1));
  kernels::LinearBackward<T>(nullptr, w_.dgate, dlogits_, hn, w_.gate, n_, c_, e_);
  kernels::RoundToDType(dhn, n_ * c_, store_);
}

template class MoeBlock<float>;
template class MoeBlock<double>;

}  // namespace moetrain::model
