#include "checkpoint/hf_config.h"

#include <fstream>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moetrain::checkpoint {
namespace {

using nlohmann::json;

absl::Status FieldError(const std::string& path, const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": field '", field, "': ", why));
}

template <typename V>
absl::Status Read(const json& j, const std::string& path, const char* field, V* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  try {
    *out = it->get<V>();
  } catch (const json::exception& e) {
    return FieldError(path, field, absl::StrCat("wrong type (", it->type_name(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<model::ModelConfig> ReadHfConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open HF config"));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  std::string model_type;
  RETURN_IF_ERROR(Read(j, path, "model_type", &model_type));
  if (model_type != "mixtral")
    return FieldError(path, "model_type",
                      absl::StrCat("'", model_type, "' is not supported (only mixtral)"));
  for (const char* unsupported : {"sliding_window", "rope_scaling"}) {
    auto it = j.find(unsupported);
    if (it != j.end() && !it->is_null())
      return FieldError(path, unsupported, "is set, but moetrain does not implement it");
  }
  std::string act = "silu";
  RETURN_IF_ERROR(Read(j, path, "hidden_act", &act));
  if (act != "silu") return FieldError(path, "hidden_act", absl::StrCat("'", act, "' (only silu)"));

  model::ModelConfig c;
  RETURN_IF_ERROR(Read(j, path, "vocab_size", &c.vocab_size));
  RETURN_IF_ERROR(Read(j, path, "hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(Read(j, path, "intermediate_size", &c.intermediate_size));
  RETURN_IF_ERROR(Read(j, path, "num_hidden_layers", &c.num_hidden_layers));
  RETURN_IF_ERROR(Read(j, path, "num_attention_heads", &c.num_attention_heads));
  RETURN_IF_ERROR(Read(j, path, "num_key_value_heads", &c.num_key_value_heads));
  RETURN_IF_ERROR(Read(j, path, "head_dim", &c.head_dim));
  RETURN_IF_ERROR(Read(j, path, "num_local_experts", &c.num_local_experts));
  RETURN_IF_ERROR(Read(j, path, "num_experts_per_tok", &c.num_experts_per_tok));
  RETURN_IF_ERROR(Read(j, path, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(Read(j, path, "rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(Read(j, path, "max_position_embeddings", &c.max_position_embeddings));
  RETURN_IF_ERROR(Read(j, path, "tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(Read(j, path, "router_aux_loss_coef", &c.router_aux_loss_coef));
  RETURN_IF_ERROR(Read(j, path, "initializer_range", &c.initializer_range));
  // moetrain extensions (written by our exporter only where the architecture allows them).
  RETURN_IF_ERROR(Read(j, path, "num_shared_experts", &c.num_shared_experts));
  RETURN_IF_ERROR(Read(j, path, "moe_intermediate_size", &c.moe_intermediate_size));
  RETURN_IF_ERROR(Read(j, path, "first_k_dense_replace", &c.first_k_dense_replace));
  RETURN_IF_ERROR(Read(j, path, "scoring_func", &c.scoring_func));
  RETURN_IF_ERROR(Read(j, path, "norm_topk_prob", &c.norm_topk_prob));
  RETURN_IF_ERROR(Read(j, path, "router_z_loss_coef", &c.router_z_loss_coef));
  RETURN_IF_ERROR(Read(j, path, "capacity_factor", &c.capacity_factor));
  absl::Status valid = c.Validate();
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", valid.message()));
  return c;
}

namespace {

absl::StatusOr<json> ParseObject(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open HF config"));
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  return j;
}

absl::StatusOr<model::ModelConfig> ReadQwen2MoeConfig(const json& j, const std::string& path) {
  auto is_set = [&j](const char* f) { return j.contains(f) && !j[f].is_null(); };
  if (is_set("rope_scaling")) return FieldError(path, "rope_scaling", "is set, but moetrain does not implement it");
  bool sliding = false;
  RETURN_IF_ERROR(Read(j, path, "use_sliding_window", &sliding));
  if (sliding) return FieldError(path, "use_sliding_window", "is true, but moetrain does not implement it");
  std::string act = "silu";
  RETURN_IF_ERROR(Read(j, path, "hidden_act", &act));
  if (act != "silu") return FieldError(path, "hidden_act", absl::StrCat("'", act, "' (only silu)"));
  int64_t step = 1;
  RETURN_IF_ERROR(Read(j, path, "decoder_sparse_step", &step));
  if (step != 1)
    return FieldError(path, "decoder_sparse_step", absl::StrCat(step, " (moetrain needs 1: every layer "
                                                                "after the dense ones is sparse)"));
  model::ModelConfig c;
  c.rms_norm_eps = 1e-6;  // Qwen2MoeConfig's defaults where they differ from moetrain's
  c.norm_topk_prob = false;
  c.rope_theta = 10000.0;
  RETURN_IF_ERROR(Read(j, path, "vocab_size", &c.vocab_size));
  RETURN_IF_ERROR(Read(j, path, "hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(Read(j, path, "intermediate_size", &c.intermediate_size));
  RETURN_IF_ERROR(Read(j, path, "num_hidden_layers", &c.num_hidden_layers));
  RETURN_IF_ERROR(Read(j, path, "num_attention_heads", &c.num_attention_heads));
  RETURN_IF_ERROR(Read(j, path, "num_key_value_heads", &c.num_key_value_heads));
  RETURN_IF_ERROR(Read(j, path, "head_dim", &c.head_dim));
  RETURN_IF_ERROR(Read(j, path, "num_experts", &c.num_local_experts));
  RETURN_IF_ERROR(Read(j, path, "num_experts_per_tok", &c.num_experts_per_tok));
  RETURN_IF_ERROR(Read(j, path, "moe_intermediate_size", &c.moe_intermediate_size));
  RETURN_IF_ERROR(Read(j, path, "norm_topk_prob", &c.norm_topk_prob));
  RETURN_IF_ERROR(Read(j, path, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(Read(j, path, "rope_theta", &c.rope_theta));
  if (is_set("rope_parameters") && j["rope_parameters"].is_object()) {
    const json& rp = j["rope_parameters"];
    if (rp.contains("rope_type") && rp["rope_type"] != "default")
      return FieldError(path, "rope_parameters.rope_type", "only 'default' RoPE is implemented");
    RETURN_IF_ERROR(Read(rp, path, "rope_theta", &c.rope_theta));
  }
  RETURN_IF_ERROR(Read(j, path, "max_position_embeddings", &c.max_position_embeddings));
  RETURN_IF_ERROR(Read(j, path, "tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(Read(j, path, "router_aux_loss_coef", &c.router_aux_loss_coef));
  RETURN_IF_ERROR(Read(j, path, "initializer_range", &c.initializer_range));
  int64_t shared = 0;
  RETURN_IF_ERROR(Read(j, path, "shared_expert_intermediate_size", &shared));
  if (shared % c.ExpertWidth() != 0)
    return FieldError(path, "shared_expert_intermediate_size",
                      absl::StrCat(shared, " is not a multiple of moe_intermediate_size ",
                                   c.ExpertWidth(), " (moetrain's shared experts have the routed width)"));
  c.num_shared_experts = shared / c.ExpertWidth();
  std::vector<int64_t> dense;
  RETURN_IF_ERROR(Read(j, path, "mlp_only_layers", &dense));
  for (size_t i = 0; i < dense.size(); ++i) {
    if (dense[i] != static_cast<int64_t>(i))
      return FieldError(path, "mlp_only_layers", "must be the first k layers [0, 1, ..., k-1] "
                                                 "(moetrain's first_k_dense_replace)");
  }
  c.first_k_dense_replace = static_cast<int64_t>(dense.size());
  absl::Status valid = c.Validate();
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", valid.message()));
  return c;
}

}  // namespace

absl::StatusOr<model::ModelConfig> ReadHfConfigAny(const std::string& path) {
  ASSIGN_OR_RETURN(json j, ParseObject(path));
  std::string model_type;
  RETURN_IF_ERROR(Read(j, path, "model_type", &model_type));
  if (model_type == "mixtral") return ReadHfConfig(path);
  if (model_type == "qwen2_moe") return ReadQwen2MoeConfig(j, path);
  return FieldError(path, "model_type",
                    absl::StrCat("'", model_type, "' is not supported (mixtral or qwen2_moe)"));
}

}  // namespace moetrain::checkpoint
