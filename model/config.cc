#include "model/config.h"

#include "absl/strings/str_cat.h"

namespace moetrain::model {
namespace {
absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("model.", field, ": ", why));
}
}  // namespace

absl::Status ModelConfig::Validate() const {
  auto positive = [](int64_t v) { return v > 0; };
  if (!positive(vocab_size)) return Bad("vocab_size", absl::StrCat("must be > 0, got ", vocab_size));
  if (vocab_size > (int64_t{1} << 31) - 1) return Bad("vocab_size", "must fit in int32");
  if (!positive(hidden_size)) return Bad("hidden_size", absl::StrCat("must be > 0, got ", hidden_size));
  if (!positive(intermediate_size))
    return Bad("intermediate_size", absl::StrCat("must be > 0, got ", intermediate_size));
  if (!positive(num_hidden_layers))
    return Bad("num_hidden_layers", absl::StrCat("must be > 0, got ", num_hidden_layers));
  if (!positive(num_attention_heads))
    return Bad("num_attention_heads", absl::StrCat("must be > 0, got ", num_attention_heads));
  if (!positive(num_key_value_heads) || num_attention_heads % num_key_value_heads != 0)
    return Bad("num_key_value_heads",
               absl::StrCat("must be > 0 and divide num_attention_heads (", num_attention_heads,
                            "), got ", num_key_value_heads));
  if (head_dim < 0) return Bad("head_dim", "must be >= 0 (0 = hidden_size / num_attention_heads)");
  if (head_dim == 0 && hidden_size % num_attention_heads != 0)
    return Bad("hidden_size", absl::StrCat("must be divisible by num_attention_heads (",
                                           num_attention_heads, ") when head_dim is 0"));
  if (HeadDim() % 2 != 0) return Bad("head_dim", absl::StrCat("must be even for RoPE, got ", HeadDim()));
  if (!positive(num_local_experts))
    return Bad("num_local_experts", absl::StrCat("must be > 0, got ", num_local_experts));
  if (num_experts_per_tok < 1 || num_experts_per_tok > num_local_experts)
    return Bad("num_experts_per_tok", absl::StrCat("must be in [1, num_local_experts=",
                                                   num_local_experts, "], got ", num_experts_per_tok));
  if (!(rms_norm_eps > 0)) return Bad("rms_norm_eps", "must be > 0");
  if (!(rope_theta > 1)) return Bad("rope_theta", "must be > 1");
  if (!positive(max_position_embeddings)) return Bad("max_position_embeddings", "must be > 0");
  if (!(router_aux_loss_coef >= 0)) return Bad("router_aux_loss_coef", "must be >= 0");
  if (!(router_z_loss_coef >= 0)) return Bad("router_z_loss_coef", "must be >= 0");
  if (!(initializer_range > 0)) return Bad("initializer_range", "must be > 0");
  if (num_shared_experts < 0) return Bad("num_shared_experts", "must be >= 0");
  if (moe_intermediate_size < 0) return Bad("moe_intermediate_size", "must be >= 0");
  if (first_k_dense_replace < 0 || first_k_dense_replace > num_hidden_layers)
    return Bad("first_k_dense_replace",
               absl::StrCat("must be in [0, num_hidden_layers=", num_hidden_layers, "]"));
  if (scoring_func != "softmax" && scoring_func != "sigmoid")
    return Bad("scoring_func", absl::StrCat("must be softmax or sigmoid, got '", scoring_func, "'"));
  if (balancing != "aux_loss" && balancing != "bias")
    return Bad("balancing", absl::StrCat("must be aux_loss or bias, got '", balancing, "'"));
  if (!(router_bias_update_rate >= 0)) return Bad("router_bias_update_rate", "must be >= 0");
  if (!(capacity_factor >= 0))
    return Bad("capacity_factor", "must be >= 0 (0 = dropless)");
  return absl::OkStatus();
}

}  // namespace moetrain::model
