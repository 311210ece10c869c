// Model configuration: Hugging Face Mixtral field names plus DeepSeekMoE extensions.
//
// A plain struct with a documented default on every field. Validate() checks every cross-field rule
// and names the field; loaders (HF config.json in checkpoint/, YAML recipes in trainer/) call it and add
// their file:line context.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace moetrain::model {

struct ModelConfig {
  // --- Mixtral (HF MixtralConfig names) ---
  int64_t vocab_size = 256;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 96;      // FFN width of a routed expert (Mixtral) and of dense layers
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 2;     // GQA: each KV head serves heads / kv_heads query heads
  int64_t head_dim = 0;                // 0 = hidden_size / num_attention_heads
  int64_t num_local_experts = 8;       // routed experts per MoE layer
  int64_t num_experts_per_tok = 2;     // top-k
  double rms_norm_eps = 1e-5;
  double rope_theta = 1e4;
  int64_t max_position_embeddings = 4096;  // size of the RoPE table
  bool tie_word_embeddings = false;
  double router_aux_loss_coef = 0.001;     // weight of the HF load-balancing loss in the total loss
  double initializer_range = 0.02;         // std of the normal init of every matrix

  // --- DeepSeekMoE extensions ---
  int64_t num_shared_experts = 0;      // shared experts, fused into one SwiGLU MLP of width
                                       // num_shared_experts * expert width, applied to every token
  int64_t moe_intermediate_size = 0;   // routed expert width; 0 = intermediate_size (Mixtral)
  int64_t first_k_dense_replace = 0;   // the first k layers use a dense SwiGLU MLP instead of MoE
  std::string scoring_func = "softmax";  // softmax (Mixtral) | sigmoid (DeepSeek-V3)
  bool norm_topk_prob = true;          // renormalise the k combine weights to sum to 1
  std::string balancing = "aux_loss";  // aux_loss | bias (aux-loss-free: a per-expert selection bias)
  double router_bias_update_rate = 1e-3;  // bias balancing: b_e += rate * sign(mean load - load_e)
  double router_z_loss_coef = 0.0;     // weight of the router z-loss (mean over layers, tokens)
  double capacity_factor = 0.0;        // 0 = dropless; else capacity = ceil(cf * tokens * k / experts)

  int64_t HeadDim() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  int64_t ExpertWidth() const {
    return moe_intermediate_size > 0 ? moe_intermediate_size : intermediate_size;
  }
  int64_t SharedWidth() const { return num_shared_experts * ExpertWidth(); }
  bool IsMoeLayer(int64_t layer) const { return layer >= first_k_dense_replace; }
  int64_t NumMoeLayers() const {
    return num_hidden_layers > first_k_dense_replace ? num_hidden_layers - first_k_dense_replace : 0;
  }

  // OK, or InvalidArgument naming the offending field(s).
  absl::Status Validate() const;
};

}  // namespace moetrain::model
