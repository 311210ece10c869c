// Single-process inference with a key/value cache: fp32 weights of every expert, one sequence.
//
// Create() loads every tensor of the ParamTable from a ParamSource (a missing kBuffer, e.g. the
// aux-loss-free router bias of an HF folder, reads as zeros) and plans ONE arena, sized before the
// first token:
//   "weights"  every parameter and buffer (full, fp32)
//   "kv_cache" per layer K and V: (max_context, kv_heads, head_dim) each; K is stored after RoPE
//   "scratch"  activations for a block of up to max_block() tokens, the RoPE table, logits
// Nothing is allocated per token. Memory: MemoryPlan() reports bytes per category.
//
// The math is Model<T>::Forward's (model/model.h) for every ModelConfig feature: GQA, rope_theta,
// dense first_k_dense_replace layers, shared experts, softmax / sigmoid scores, norm_topk_prob,
// e_score_correction_bias (selection only), tie_word_embeddings. Inference is always dropless
// (capacity_factor is ignored: a trained capacity only shapes training-time batches).
// Not thread-safe: one call at a time. Kernels run on `threads` OpenMP threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "kernels/router.h"
#include "model/config.h"
#include "model/param_source.h"
#include "model/param_table.h"

namespace moetrain::model {

class KvDecoder {
 public:
  // Tokens processed per block by AppendBlock (scratch is sized for this many rows).
  static constexpr int64_t kMaxBlock = 64;

  // Errors: InvalidArgument for a bad config or max_context (<= 0 or > max_position_embeddings);
  // whatever the source returns for a missing or malformed tensor (naming it).
  // threads <= 0: the OpenMP default.
  static absl::StatusOr<std::unique_ptr<KvDecoder>> Create(const ModelConfig& config,
                                                           int64_t max_context, ParamSource& source,
                                                           int threads = 0);
  KvDecoder(const KvDecoder&) = delete;
  KvDecoder& operator=(const KvDecoder&) = delete;

  // Forgets the sequence (the cache is overwritten lazily; no memory is touched).
  void Reset() { position_ = 0; }

  // Feeds one token at position position(); returns the logits (vocab_size) for the next token.
  // The pointer stays valid until the next Append/AppendBlock/Prefill.
  // Errors: InvalidArgument for a token outside [0, vocab_size); OutOfRange when the cache is full.
  absl::StatusOr<const float*> Append(int32_t token);
  // Feeds n tokens (1 <= n <= kMaxBlock) as one block; returns their logits (n, vocab_size): row i
  // predicts the token after tokens[i]. Same errors as Append; on error nothing is consumed.
  absl::StatusOr<const float*> AppendBlock(const int32_t* tokens, int64_t n);
  // Feeds a whole prompt (in blocks of kMaxBlock); returns the logits after its last token.
  // Errors as Append, plus InvalidArgument for an empty prompt.
  absl::StatusOr<const float*> Prefill(const std::vector<int32_t>& tokens);

  const ModelConfig& config() const { return config_; }
  int64_t position() const { return position_; }  // tokens in the cache
  int64_t max_context() const { return max_context_; }
  std::map<std::string, size_t> MemoryPlan() const { return arena_.BytesByCategory(); }

 private:
  KvDecoder() = default;
  absl::Status Plan();
  absl::Status LoadWeights(ParamSource& source);
  void Bind();
  void Forward(int64_t n);  // tokens_[0..n) at positions position_ .. position_+n-1 -> logits_
  void FeedForward(int64_t layer, float* y, const float* x, int64_t n);

  ModelConfig config_;
  ParamTable table_;
  int64_t max_context_ = 0, position_ = 0;
  int threads_ = 1;
  Arena arena_;
  kernels::RouterShape router_;

  struct Layer {
    const float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm;
    float *k_cache, *v_cache;  // (max_context, kv_heads * head_dim)
    bool is_moe = false;
    const float *gate_proj = nullptr, *up_proj = nullptr, *down_proj = nullptr;  // dense MLP
    const float* router = nullptr;                                               // (E, C)
    const float* bias = nullptr;                                                 // (E) or nullptr
    std::vector<const float*> w1, w2, w3;                        // per routed expert
    const float *sw1 = nullptr, *sw2 = nullptr, *sw3 = nullptr;  // fused shared experts
  };
  std::vector<Layer> layers_;
  const float *embed_ = nullptr, *final_norm_ = nullptr, *head_ = nullptr;
  const float *rope_cos_ = nullptr, *rope_sin_ = nullptr;  // (max_context, head_dim / 2)
  // Scratch for one block of B = kMaxBlock rows (shapes in kv_decoder.cc's Plan).
  int32_t* tokens_ = nullptr;
  float *x_ = nullptr, *xn_ = nullptr, *rstd_ = nullptr, *q_ = nullptr, *att_ = nullptr,
        *h_ = nullptr, *ffn_out_ = nullptr, *logits_ = nullptr, *attn_ws_ = nullptr;
  float *ea_ = nullptr, *eb_ = nullptr, *eh_ = nullptr;  // FFN (rows, width) buffers
  // MoE layers only.
  float *router_logits_ = nullptr, *scores_ = nullptr, *topk_w_ = nullptr, *xs_ = nullptr,
        *ys_ = nullptr, *shared_out_ = nullptr;
  int32_t *topk_idx_ = nullptr, *counts_ = nullptr, *offsets_ = nullptr, *sorted_pos_ = nullptr,
          *row_token_ = nullptr;
};

}  // namespace moetrain::model
