#include "model/attention_block.h"

#include "core/phase_timer.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace moetrain::model {

template <typename T>
AttentionBlock<T>::AttentionBlock(const ModelConfig& c, int64_t batch, int64_t seq, int num_threads)
    : b_(batch), s_(seq), n_(batch * seq), c_(c.hidden_size), hq_(c.num_attention_heads),
      hkv_(c.num_key_value_heads), d_(c.HeadDim()), eps_(c.rms_norm_eps), threads_(num_threads) {}

template <typename T>
void AttentionBlock<T>::DeclareActivations(SlotDeclarer* acts, const ModelConfig& c, int64_t batch,
                                           int64_t seq) {
  const int64_t n = batch * seq, d = c.HeadDim();
  const DType t = DTypeOf<T>::value;
  acts->Add("xn", {n, c.hidden_size}, t);
  acts->Add("rstd", {n}, t);
  acts->Add("q", {n, c.num_attention_heads * d}, t);
  acts->Add("k", {n, c.num_key_value_heads * d}, t);
  acts->Add("v", {n, c.num_key_value_heads * d}, t);
  acts->Add("att", {n, c.num_attention_heads * d}, t);
  acts->Add("lse", {batch, c.num_attention_heads, seq}, t);
}

template <typename T>
void AttentionBlock<T>::DeclareWorkspace(SlotDeclarer* ws, const ModelConfig& c, int64_t batch,
                                         int64_t seq, int num_threads) {
  const int64_t n = batch * seq, d = c.HeadDim();
  const DType t = DTypeOf<T>::value;
  ws->Add("datt", {n, c.num_attention_heads * d}, t);
  ws->Add("dq", {n, c.num_attention_heads * d}, t);
  ws->Add("dk", {n, c.num_key_value_heads * d}, t);
  ws->Add("dv", {n, c.num_key_value_heads * d}, t);
  ws->Add("dxn", {n, c.hidden_size}, t);
  ws->Add("attn", {kernels::AttentionWorkspaceElems(seq, c.num_attention_heads, d, num_threads)}, t);
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
  const int64_t qd = hq_ * d_, kvd = hkv_ * d_;
  PhaseScope ph("fwd.norm");
  kernels::RmsNormForward(xn_, rstd_, x, w_.norm, n_, c_, eps_);
  ph.Next("fwd.attn.proj");
  kernels::LinearForward(q_, xn_, w_.wq, n_, c_, qd);
  kernels::LinearForward(k_, xn_, w_.wk, n_, c_, kvd);
  kernels::LinearForward(v_, xn_, w_.wv, n_, c_, kvd);
  ph.Next("fwd.attn.rope");
  kernels::RopeForward(q_, cos_, sin_, b_, s_, hq_, d_);
  kernels::RopeForward(k_, cos_, sin_, b_, s_, hkv_, d_);
  ph.Next("fwd.attn.core");
  kernels::AttentionForward(att_, lse_, q_, k_, v_, b_, s_, hq_, hkv_, d_, attn_ws_, threads_);
  ph.Next("fwd.attn.proj");
  kernels::LinearForward(out, att_, w_.wo, n_, qd, c_);
  ph.Next("fwd.residual");
  kernels::AddInPlace(out, x, n_ * c_);  // residual
}

template <typename T>
void AttentionBlock<T>::Backward(T* dx, const T* dout, const T* x) {
  const int64_t qd = hq_ * d_, kvd = hkv_ * d_;
  PhaseScope ph("bwd.attn.proj");
  kernels::LinearBackward(datt_, w_.dwo, dout, att_, w_.wo, n_, qd, c_);
  ph.Next("bwd.attn.core");
  kernels::AttentionBackward(dq_, dk_, dv_, datt_, q_, k_, v_, att_, lse_, b_, s_, hq_, hkv_, d_,
                             attn_ws_, threads_);
  ph.Next("bwd.attn.rope");
  kernels::RopeBackward(dq_, cos_, sin_, b_, s_, hq_, d_);
  kernels::RopeBackward(dk_, cos_, sin_, b_, s_, hkv_, d_);
  ph.Next("bwd.attn.proj");
  // dxn = dq Wq + dk Wk + dv Wv
  kernels::LinearBackward(dxn_, w_.dwq, dq_, xn_, w_.wq, n_, c_, qd);
  kernels::Matmul(dxn_, dk_, w_.wk, n_, c_, kvd, false, false, T(1), T(1));
  kernels::Matmul(dxn_, dv_, w_.wv, n_, c_, kvd, false, false, T(1), T(1));
  kernels::LinearBackward<T>(nullptr, w_.dwk, dk_, xn_, w_.wk, n_, c_, kvd);
  kernels::LinearBackward<T>(nullptr, w_.dwv, dv_, xn_, w_.wv, n_, c_, kvd);
  ph.Next("bwd.norm");
  kernels::RmsNormBackward(dx, w_.dnorm, dxn_, x, w_.norm, rstd_, n_, c_);
  ph.Next("bwd.residual");
  kernels::AddInPlace(dx, dout, n_ * c_);  // residual
}

template class AttentionBlock<float>;
template class AttentionBlock<double>;

}  // namespace moetrain::model
