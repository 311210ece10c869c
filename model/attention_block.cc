#include "model/attention_block.h"

#include "core/phase_timer.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace moetrain::model {

template <typename T>
AttentionBlock<T>::AttentionBlock(const ModelConfig& c, int64_t batch, int64_t seq, int num_threads,
                                  parallel::Communicator* tp)
    : b_(batch), s_(seq), n_(batch * seq), c_(c.hidden_size), hq_(c.num_attention_heads),
      hkv_(c.num_key_value_heads), d_(c.HeadDim()), eps_(c.rms_norm_eps), threads_(num_threads),
      tp_(tp != nullptr && tp->size() > 1 ? tp : nullptr) {
  const int t = tp_ != nullptr ? tp_->size() : 1;
  MT_CHECK_MSG(hq_ % t == 0 && hkv_ % t == 0, "attention: heads ", hq_, " / kv heads ", hkv_,
               " do not split over tp = ", t);
  hq_ /= t;
  hkv_ /= t;
}

template <typename T>
void AttentionBlock<T>::DeclareActivations(SlotDeclarer* acts, const ModelConfig& c, int64_t batch,
                                           int64_t seq, int tp) {
  const int64_t n = batch * seq, d = c.HeadDim();
  const int64_t hq = c.num_attention_heads / tp, hkv = c.num_key_value_heads / tp;
  const DType t = DTypeOf<T>::value;
  acts->Add("xn", {n, c.hidden_size}, t);
  acts->Add("rstd", {n}, t);
  acts->Add("q", {n, hq * d}, t);
  acts->Add("k", {n, hkv * d}, t);
  acts->Add("v", {n, hkv * d}, t);
  acts->Add("att", {n, hq * d}, t);
  acts->Add("lse", {batch, hq, seq}, t);
}

template <typename T>
void AttentionBlock<T>::DeclareWorkspace(SlotDeclarer* ws, const ModelConfig& c, int64_t batch,
                                         int64_t seq, int num_threads, int tp) {
  const int64_t n = batch * seq, d = c.HeadDim();
  const int64_t hq = c.num_attention_heads / tp, hkv = c.num_key_value_heads / tp;
  const DType t = DTypeOf<T>::value;
  ws->Add("datt", {n, hq * d}, t);
  ws->Add("dq", {n, hq * d}, t);
  ws->Add("dk", {n, hkv * d}, t);
  ws->Add("dv", {n, hkv * d}, t);
  ws->Add("dxn", {n, c.hidden_size}, t);
  ws->Add("attn", {kernels::AttentionWorkspaceElems(seq, hq, d, num_threads)}, t);
}

template <typename T>
void AttentionBlock<T>::Bind(const Weights& w, const T* rope_cos, const T* rope_sin,
                             const SlotBinder& acts, const SlotBinder& ws) {
  w_ = w;
  cos_ = rope_cos;
  sin_ = rope_sin;
  xn_ = acts.Get<T>("xn");
  rstd_ = acts.Get<T>("rstd");
  q_ = acts.Get<T>("q");
  k_ = acts.Get<T>("k");
  v_ = acts.Get<T>("v");
  att_ = acts.Get<T>("att");
  lse_ = acts.Get<T>("lse");
  datt_ = ws.Get<T>("datt");
  dq_ = ws.Get<T>("dq");
  dk_ = ws.Get<T>("dk");
  dv_ = ws.Get<T>("dv");
  dxn_ = ws.Get<T>("dxn");
  attn_ws_ = ws.Get<T>("attn");
}

template <typename T>
void AttentionBlock<T>::Forward(T* out, const T* x) {
  ComputeSaved(x);
  PhaseScope ph("fwd.attn.proj");
  kernels::LinearForward(out, att_, w_.wo, n_, hq_ * d_, c_);
  if (tp_ != nullptr) {  // row-parallel o_proj: sum the partial outputs
    ph.Next("fwd.attn.tp_allreduce");
    MT_CHECK_OK(tp_->AllReduce(out, out, n_ * c_, DTypeOf<T>::value));
  }
  ph.Next("fwd.residual");
  kernels::AddInPlace(out, x, n_ * c_);  // residual
  kernels::RoundToDType(out, n_ * c_, store_);
}

template <typename T>
void AttentionBlock<T>::ComputeSaved(const T* x) {
  const int64_t qd = hq_ * d_, kvd = hkv_ * d_;
  PhaseScope ph("fwd.norm");
  kernels::RmsNormForward(xn_, rstd_, x, w_.norm, n_, c_, eps_);
  kernels::RoundToDType(xn_, n_ * c_, store_);
  ph.Next("fwd.attn.proj");
  kernels::LinearForward(q_, xn_, w_.wq, n_, c_, qd);
  kernels::LinearForward(k_, xn_, w_.wk, n_, c_, kvd);
  kernels::LinearForward(v_, xn_, w_.wv, n_, c_, kvd);
  ph.Next("fwd.attn.rope");
  kernels::RopeForward(q_, cos_, sin_, b_, s_, hq_, d_);
  kernels::RopeForward(k_, cos_, sin_, b_, s_, hkv_, d_);
  kernels::RoundToDType(q_, n_ * qd, store_);  // q, k after RoPE, v after its projection
  kernels::RoundToDType(k_, n_ * kvd, store_);
  kernels::RoundToDType(v_, n_ * kvd, store_);
  ph.Next("fwd.attn.core");
  kernels::AttentionForward(att_, lse_, q_, k_, v_, b_, s_, hq_, hkv_, d_, attn_ws_, threads_);
  kernels::RoundToDType(att_, n_ * (hq_ * d_), store_);
}

template <typename T>
void AttentionBlock<T>::Backward(T* dx, const T* dout, const T* x) {
  const int64_t qd = hq_ * d_, kvd = hkv_ * d_;
  PhaseScope ph("bwd.attn.proj");
  kernels::LinearBackward(datt_, w_.dwo, dout, att_, w_.wo, n_, qd, c_);
  kernels::RoundToDType(datt_, n_ * qd, store_);
  ph.Next("bwd.attn.core");
  kernels::AttentionBackward(dq_, dk_, dv_, datt_, q_, k_, v_, att_, lse_, b_, s_, hq_, hkv_, d_,
                             attn_ws_, threads_);
  ph.Next("bwd.attn.rope");
  kernels::RopeBackward(dq_, cos_, sin_, b_, s_, hq_, d_);
  kernels::RopeBackward(dk_, cos_, sin_, b_, s_, hkv_, d_);
  kernels::RoundToDType(dq_, n_ * qd, store_);
  kernels::RoundToDType(dk_, n_ * kvd, store_);
  kernels::RoundToDType(dv_, n_ * kvd, store_);
  ph.Next("bwd.attn.proj");
  // dxn = dq Wq + dk Wk + dv Wv
  kernels::LinearBackward(dxn_, w_.dwq, dq_, xn_, w_.wq, n_, c_, qd);
  kernels::Matmul(dxn_, dk_, w_.wk, n_, c_, kvd, false, false, T(1), T(1));
  kernels::Matmul(dxn_, dv_, w_.wv, n_, c_, kvd, false, false, T(1), T(1));
  kernels::LinearBackward<T>(nullptr, w_.dwk, dk_, xn_, w_.wk, n_, c_, kvd);
  kernels::LinearBackward<T>(nullptr, w_.dwv, dv_, xn_, w_.wv, n_, c_, kvd);
  if (tp_ != nullptr) {  // column-parallel q/k/v: sum the partial input gradients
    ph.Next("bwd.attn.tp_allreduce");
    MT_CHECK_OK(tp_->AllReduce(dxn_, dxn_, n_ * c_, DTypeOf<T>::value));
  }
  kernels::RoundToDType(dxn_, n_ * c_, store_);
  ph.Next("bwd.norm");
  kernels::RmsNormBackward(dx, w_.dnorm, dxn_, x, w_.norm, rstd_, n_, c_);
  ph.Next("bwd.residual");
  kernels::AddInPlace(dx, dout, n_ * c_);  // residual
  kernels::RoundToDType(dx, n_ * c_, store_);
}

template class AttentionBlock<float>;
template class AttentionBlock<double>;

}  // namespace moetrain::model
