// Pre-norm causal GQA self-attention sub-block of a decoder layer:
//   xn = RMSNorm(x) * input_layernorm;  q = RoPE(xn Wq^T), k = RoPE(xn Wk^T), v = xn Wv^T
//   out = x + Wo( attention(q, k, v) )
// Tensors: x, out (B*S, C); q, att (B,S,Hq,D); k, v (B,S,Hkv,D); lse (B,Hq,S).
// Saves xn, rstd, q, k, v (rotated), att, lse. Parameter grads +=, dx overwritten.
#pragma once

#include "core/arena.h"
#include "model/config.h"
#include "model/slots.h"

namespace moetrain::model {

template <typename T>
class AttentionBlock {
 public:
  struct Weights {
    const T* norm; const T* wq; const T* wk; const T* wv; const T* wo;
    T* dnorm; T* dwq; T* dwk; T* dwv; T* dwo;
  };
  AttentionBlock() = default;
  AttentionBlock(const ModelConfig& c, int64_t batch, int64_t seq, int num_threads);

  static void DeclareActivations(SlotDeclarer* acts, const ModelConfig& c, int64_t batch, int64_t seq);
  static void DeclareWorkspace(SlotDeclarer* ws, const ModelConfig& c, int64_t batch, int64_t seq,
                               int num_threads);
  // rope_cos / rope_sin: (max_pos, D/2) tables shared by all layers.
  void Bind(const Weights& w, const T* rope_cos, const T* rope_sin, const SlotBinder& acts,
            const SlotBinder& ws);

  void Forward(T* out, const T* x);
  void Backward(T* dx, const T* dout, const T* x);

 private:
  int64_t b_ = 0, s_ = 0, n_ = 0, c_ = 0, hq_ = 0, hkv_ = 0, d_ = 0;
  double eps_ = 0;
  int threads_ = 1;
  Weights w_{};
  const T *cos_ = nullptr, *sin_ = nullptr;
  T *xn_ = nullptr, *rstd_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr,
    *lse_ = nullptr;
  T *datt_ = nullptr, *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr, *dxn_ = nullptr,
    *attn_ws_ = nullptr;
};

}  // namespace moetrain::model
