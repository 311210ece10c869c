// Pre-norm causal GQA self-attention sub-block of a decoder layer:
//   xn = RMSNorm(x) * input_layernorm;  q = RoPE(xn Wq^T), k = RoPE(xn Wk^T), v = xn Wv^T
//   out = x + Wo( attention(q, k, v) )
// Tensors: x, out (B*S, C); q, att (B,S,Hq,D); k, v (B,S,Hkv,D); lse (B,Hq,S).
// Saves xn, rstd, q, k, v (rotated), att, lse. Parameter grads +=, dx overwritten.
// Mixed precision (set_store_dtype bf16/f16): xn, q, k, v, att, out and the activation gradients
// datt, dq, dk, dv, dxn, dx are rounded to that dtype where they are written (the GPU path stores
// them in 16 bits); rstd and lse stay fp32, and so does all arithmetic.
// Tensor parallel (tp group of t ranks): this rank holds Hq/t query heads and Hkv/t KV heads (q/k/v
// column-parallel, o_proj row-parallel); the o_proj output is AllReduced over tp in Forward, and
// the input gradient dxn of the q/k/v projections is AllReduced over tp in Backward (Megatron's
// f/g conjugate pair). REQUIRES: Hq % t == 0 and Hkv % t == 0.
#pragma once

#include "core/arena.h"
#include "model/config.h"
#include "model/slots.h"
#include "parallel/communicator.h"

namespace moetrain::model {

template <typename T>
class AttentionBlock {
 public:
  struct Weights {
    const T* norm; const T* wq; const T* wk; const T* wv; const T* wo;
    T* dnorm; T* dwq; T* dwk; T* dwv; T* dwo;
  };
  AttentionBlock() = default;
  // tp: the tensor-parallel group, or nullptr (all heads local).
  AttentionBlock(const ModelConfig& c, int64_t batch, int64_t seq, int num_threads,
                 parallel::Communicator* tp = nullptr);

  // tp: the tensor-parallel size (shapes are per rank).
  static void DeclareActivations(SlotDeclarer* acts, const ModelConfig& c, int64_t batch, int64_t seq,
                                 int tp = 1);
  static void DeclareWorkspace(SlotDeclarer* ws, const ModelConfig& c, int64_t batch, int64_t seq,
                               int num_threads, int tp = 1);
  // rope_cos / rope_sin: (max_pos, D/2) tables shared by all layers.
  void Bind(const Weights& w, const T* rope_cos, const T* rope_sin, const SlotBinder& acts,
            const SlotBinder& ws);

  // Activation rounding (kernels/cast.h); default kF32 = none.
  void set_store_dtype(DType dtype) { store_ = dtype; }

  void Forward(T* out, const T* x);
  // Computes only what Forward saves for Backward (xn, rstd, q, k, v, att, lse) from x, the same
  // bits as Forward: the output projection and its tp AllReduce are skipped (Backward does not read
  // the output), so this needs no communication. Used by selective activation checkpointing.
  void ComputeSaved(const T* x);
  void Backward(T* dx, const T* dout, const T* x);

 private:
  int64_t b_ = 0, s_ = 0, n_ = 0, c_ = 0, hq_ = 0, hkv_ = 0, d_ = 0;
  double eps_ = 0;
  int threads_ = 1;
  parallel::Communicator* tp_ = nullptr;
  DType store_ = DType::kF32;
  Weights w_{};
  const T *cos_ = nullptr, *sin_ = nullptr;
  T *xn_ = nullptr, *rstd_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr,
    *lse_ = nullptr;
  T *datt_ = nullptr, *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr, *dxn_ = nullptr,
    *attn_ws_ = nullptr;
};

}  // namespace moetrain::model
